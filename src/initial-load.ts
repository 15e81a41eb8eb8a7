// The initial load (contract section 2): the rows that exist when the slot is created, read inside the
// snapshot the slot exported, sent through the same sinks as `*.snapshot` events with source `initial`.
// Guarantees: nothing is missed or counted twice between load and stream (the snapshot is the slot's
// consistent point); memory stays flat (keyset pages); the checkpoint says `running` (written before the
// slot was created) until the load is whole, so a load cut short is redone from a fresh slot on the next start.

import postgres from 'postgres'
import { decodeValue } from './decode/wal2json.ts'
import type { ColumnInfo, Row } from './decode/types.ts'
import { type Entity, type TaskEvent, camelRow, snapshotEvent } from './events/events.ts'
import { eventId } from './events/ids.ts'
import type { Logger } from './log.ts'
import { formatLsn } from './replication/lsn.ts'
import { StopRequested } from './retry.ts'
import type { CreatedSlot } from './replication/slot.ts'
import { quoteIdentifier, quoteLiteral } from './replication/slot.ts'
import { describeTables } from './replication/tables.ts'
import type { MongoSink } from './sinks/mongo.ts'

export type InitialLoadOptions = {
  connection: postgres.Options<{}>
  schema: string
  slot: CreatedSlot
  mongo: MongoSink
  /** Writes one page through both sinks, retrying until both succeeded. */
  deliver(events: TaskEvent[]): Promise<void>
  /** Runs a MongoDB operation until it succeeds. */
  retryMongo(work: () => Promise<void>): Promise<void>
  log: Logger
  pageSize?: number
  /** Checked between pages: a stop ends the load there, and the next start loads again. */
  stopRequested?: () => boolean
}

const DEFAULT_PAGE_SIZE = 1_000
// Parents first: a consumer rebuilding state sees each workspace before its tasks.
const LOAD_ORDER: { table: 'workspaces' | 'tasks'; entity: Entity }[] = [
  { table: 'workspaces', entity: 'workspace' },
  { table: 'tasks', entity: 'task' },
]

export async function runInitialLoad(options: InitialLoadOptions): Promise<number> {
  const { slot, mongo, log, retryMongo } = options
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE
  const lsn = formatLsn(slot.consistentPoint)
  const startedAt = new Date().toISOString()
  log.info(`initial load from snapshot ${slot.snapshotName} at ${lsn}`)

  // Text output in UTC and ISO, as the stream's walsender writes it.
  const sql = postgres({ ...options.connection, max: 1, onnotice: () => {}, connection: { ...options.connection.connection, TimeZone: 'UTC', DateStyle: 'ISO' } })
  let ordinal = 0
  try {
    const columns = await describeTables(sql, options.schema, LOAD_ORDER.map(({ table }) => table))
    await sql.begin('isolation level repeatable read read only', async (transaction) => {
      await transaction.unsafe(`set transaction snapshot ${quoteLiteral(slot.snapshotName)}`)
      for (const { table, entity } of LOAD_ORDER) {
        const tableColumns = columns.get(`${options.schema}.${table}`)!
        // A JSON array of text keeps NULL apart from the text 'NULL', which a text[] literal does not.
        const select = `select id::text as key, json_build_array(${tableColumns.map((column) => `${quoteIdentifier(column.name)}::text`).join(', ')}) as "values"
          from ${quoteIdentifier(options.schema)}.${quoteIdentifier(table)}`
        let after: string | null = null
        for (;;) {
          const page: { key: string; values: (string | null)[] }[] = after === null
            ? await transaction.unsafe(`${select} order by id limit ${pageSize}`)
            : await transaction.unsafe(`${select} where id > $1 order by id limit ${pageSize}`, [after])
          if (!page.length) break
          const events = page.map(({ values }) =>
            snapshotEvent(entity, camelRow(textRow(tableColumns, values)), {
              id: eventId(slot.consistentPoint, ordinal++),
              source: 'initial',
              lsn,
              xid: null,
              commitTime: startedAt,
            }),
          )
          await options.deliver(events)
          if (options.stopRequested?.()) {
            log.warn(`initial load stopped after ${ordinal} rows; the next start loads again`)
            throw new StopRequested('the initial load')
          }
          after = page.at(-1)!.key
        }
      }
    })
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {})
  }
  // Documents of rows that no longer exist, from an earlier slot's life, become tombstones.
  const firstLoaded = eventId(slot.consistentPoint, 0)
  await retryMongo(() => mongo.tombstoneOlderThan('tasks', firstLoaded))
  await retryMongo(() => mongo.tombstoneOlderThan('workspaces', firstLoaded))
  await retryMongo(() => mongo.writeCheckpoint({ slot: slot.name, lsn, initialLoad: 'done', loadedAt: lsn }))
  log.info(`initial load done: ${ordinal} rows`)
  return ordinal
}

/** A row read as text, decoded exactly as the stream's rows are. */
function textRow(columns: ColumnInfo[], values: (string | null)[]): Row {
  const row: Row = {}
  columns.forEach((column, index) => (row[column.name] = decodeValue(column.typeOid, values[index] ?? null)))
  return row
}
