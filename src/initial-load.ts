// The initial load (contract section 2): the rows that exist when the slot is created, read inside the
// snapshot the slot exported, sent through the same sinks as `*.snapshot` events with source `initial`.
// Guarantees: nothing is missed or counted twice between load and stream (the snapshot is the slot's
// consistent point); memory stays flat (keyset pages of at most 1,000 rows and about 4 MiB, read through a
// cursor a few rows at a time, so that a page of large rows stops early); a stored row the tables no longer
// have (a reload after the slot was lost) gets a deletion event of source `initial`, after the load's rows, so
// that a reader of the Stream converges too; the checkpoint says `running` (written before the slot was
// created) until the load is whole, so a load cut short is redone from a fresh slot on the next start.

import postgres from 'postgres'
import { type Row, TIMESTAMPS } from './decode/types.ts'
import { decodeValue, isTimestampType } from './decode/values.ts'
import { type Entity, type TaskEvent, camelRow, snapshotEvent, vanishedEvent } from './events/events.ts'
import { eventId } from './events/ids.ts'
import { type KnownTask, stepLifeCycle } from './events/life-cycle.ts'
import { NEVER_SEEN } from './events/row-states.ts'
import type { Logger } from './log.ts'
import { formatLsn } from './replication/lsn.ts'
import { StopRequested } from './retry.ts'
import type { CreatedSlot } from './replication/slot.ts'
import { quoteIdentifier, quoteLiteral } from './replication/slot.ts'
import { type MongoSink, fromDocument } from './sinks/mongo.ts'

export type InitialLoadOptions = {
  connection: postgres.Options<{}>
  schema: string
  slot: CreatedSlot
  mongo: MongoSink
  /** Writes one page through both sinks, retrying until both succeeded. */
  deliver(events: TaskEvent[]): Promise<void>
  /** Runs a MongoDB operation until it succeeds. */
  retryMongo(work: () => Promise<void>): Promise<void>
  /** Records the load whole, at the slot's consistent point (text form): the checkpoint's `done`. */
  recordDone(lsn: string): Promise<void>
  log: Logger
  pageSize?: number
  pageBytes?: number
  /** Checked between pages: a stop ends the load there, and the next start loads again. */
  stopRequested?: () => boolean
}

const DEFAULT_PAGE_SIZE = 1_000
// A page also ends once its rows' text weighs this: 1,000 rows of 1 MB would be 1 GB.
const DEFAULT_PAGE_BYTES = 4 * 1024 * 1024
// Rows fetched from the page's cursor at a time: as many as make about FETCH_BYTES by the largest row seen
// so far (FIRST_FETCH_ROWS before any), so that the bytes of a page overshoot by one fetch at most.
const FETCH_BYTES = 1024 * 1024
const FIRST_FETCH_ROWS = 16
// Parents first: a consumer rebuilding state sees each workspace before its tasks.
const LOAD_ORDER: { table: 'workspaces' | 'tasks'; entity: Entity }[] = [
  { table: 'workspaces', entity: 'workspace' },
  { table: 'tasks', entity: 'task' },
]

export async function runInitialLoad(options: InitialLoadOptions): Promise<number> {
  const { slot, mongo, log, retryMongo } = options
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE
  const pageBytes = options.pageBytes ?? DEFAULT_PAGE_BYTES
  let largestRow = 0
  const lsn = formatLsn(slot.consistentPoint)
  const startedAt = new Date().toISOString()
  log.info(`initial load from snapshot ${slot.snapshotName} at ${lsn}`)

  // Text output in UTC and ISO, as the stream's walsender writes it.
  const sql = postgres({ ...options.connection, max: 1, onnotice: () => {}, connection: { ...options.connection.connection, TimeZone: 'UTC', DateStyle: 'ISO' } })
  let ordinal = 0
  // A load into a database with no task yet has no life cycle to keep: it need not look any up.
  let reload = false
  await retryMongo(async () => void (reload = await mongo.holdsAny('task')))
  const stopIfRequested = () => {
    if (!options.stopRequested?.()) return
    log.warn(`initial load stopped after ${ordinal} rows; the next start loads again`)
    throw new StopRequested('the initial load')
  }
  try {
    await sql.begin('isolation level repeatable read read only', async (transaction) => {
      await transaction.unsafe(`set transaction snapshot ${quoteLiteral(slot.snapshotName)}`)
      for (const { table, entity } of LOAD_ORDER) {
        // Every column the table has when it is read, named and typed by the result itself, not by a column list
        // read earlier: a migration between the slot's creation and this read changes both alike. The values
        // come as PostgreSQL's text output (raw), decoded as the stream's are.
        const select = `select id::text as key, t.* from ${quoteIdentifier(options.schema)}.${quoteIdentifier(table)} t`
        let after: string | null = null
        for (;;) {
          const query = after === null
            ? transaction.unsafe(`${select} order by id limit ${pageSize}`)
            : transaction.unsafe(`${select} where id > $1 order by id limit ${pageSize}`, [after])
          const fetchRows = largestRow ? Math.max(1, Math.min(pageSize, Math.floor(FETCH_BYTES / largestRow))) : FIRST_FETCH_ROWS
          const page = await readPage(query, fetchRows, pageBytes)
          if (!page.rows.length) break
          for (const row of page.rows) largestRow = Math.max(largestRow, rowLength(row))
          const columns = page.columns.slice(1)
          const events = page.rows.map(([, ...values]: (Buffer | null)[]) =>
            snapshotEvent(entity, camelRow(textRow(columns, values)), {
              id: eventId(slot.consistentPoint, ordinal++),
              source: 'initial',
              lsn,
              xid: null,
              commitTime: startedAt,
            }),
          )
          if (entity === 'task') await stepLoadedLifeCycles(events, reload, options)
          await options.deliver(events)
          stopIfRequested()
          after = page.rows.at(-1)![0]!.toString()
        }
      }
    })
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {})
  }
  // Documents of rows that no longer exist, from an earlier slot's life: children first, as deletions would come.
  const firstLoaded = eventId(slot.consistentPoint, 0)
  let vanished = 0
  for (const { table, entity } of [...LOAD_ORDER].reverse()) {
    let after = ''
    for (;;) {
      let page: Awaited<ReturnType<MongoSink['staleRows']>> = []
      await retryMongo(async () => void (page = await mongo.staleRows(table, firstLoaded, after, pageSize)))
      if (!page.length) break
      await options.deliver(page.map((document) => vanishedEvent(entity, fromDocument(document), { id: eventId(slot.consistentPoint, ordinal++), lsn, commitTime: startedAt })))
      vanished += page.length
      stopIfRequested()
      after = page.at(-1)!._id
    }
  }
  await options.recordDone(lsn)
  log.info(`initial load done: ${ordinal - vanished} rows, ${vanished} stored rows no longer in the tables deleted`)
  return ordinal
}

/**
 * A loaded task's life cycle: the one its document holds when a reload finds it in the same status, else
 * unknown from here on (when it entered its status is not known; its totals stay).
 */
async function stepLoadedLifeCycles(events: TaskEvent[], reload: boolean, { mongo, retryMongo }: Pick<InitialLoadOptions, 'mongo' | 'retryMongo'>) {
  let known = new Map<string, KnownTask>()
  if (reload) await retryMongo(async () => void (known = await mongo.knownLifeCycles(events.map((event) => event.taskId!))))
  for (const event of events) stepLifeCycle(event, known.get(event.taskId!) ?? NEVER_SEEN, true)
}

type RawRow = (Buffer | null)[]

/** A page's rows, as text, read `fetchRows` at a time until the query ends or they weigh `pageBytes`. */
export async function readPage(query: { raw(): { cursor(rows: number): unknown } }, fetchRows: number, pageBytes: number): Promise<{ rows: RawRow[]; columns: postgres.ColumnList<string> }> {
  const rows: RawRow[] = []
  let columns: postgres.ColumnList<string> | undefined
  let bytes = 0
  // The driver names the columns on the first fetch only.
  for await (const fetched of query.raw().cursor(fetchRows) as AsyncIterable<RawRow[] & { columns?: postgres.ColumnList<string> }>) {
    columns ??= fetched.columns
    for (const row of fetched) {
      rows.push(row)
      bytes += rowLength(row)
    }
    if (bytes >= pageBytes) break
  }
  return { rows, columns: columns ?? ([] as unknown as postgres.ColumnList<string>) }
}

function rowLength(row: RawRow): number {
  let bytes = 0
  for (const value of row) bytes += value?.length ?? 0
  return bytes
}

/** A row read as text, decoded exactly as the stream's rows are. */
function textRow(columns: postgres.ColumnList<string>, values: (Buffer | null)[]): Row {
  const row: Row = {}
  let timestamps: string[] | undefined
  columns.forEach(({ name, type }, index) => {
    row[name] = decodeValue(type, values[index]?.toString() ?? null)
    if (isTimestampType(type)) (timestamps ??= []).push(name)
  })
  if (timestamps) row[TIMESTAMPS] = timestamps
  return row
}
