// What extract-tasks must have produced, worked out without it, and the checks of what it did produce.
// The expected changes come from a wal2json slot of our own, created before the workload: each
// transaction's commit LSN and each change's ordinal in it give the change's event id (contract section 2),
// whatever the connector did; each change's event, field by field, comes from replaying them
// (expected-events.ts). Against them: the ids that reached Pub/Sub, what each first copy says and the order of
// first deliveries per ordering key, the documents of `task_events` and what each says, and the current state
// in `tasks`/`workspaces` against the tables.
// Also the seeded workload the end-to-end tests write, so that a failing run can be written again.

import type { Db, Document } from 'mongodb'
import type postgres from 'postgres'
import {
  type EventRow,
  type ExpectedEvent,
  type RowChangeFacts,
  type Wal2jsonColumn,
  camelCase,
  eventDifferences,
  expectedEvents,
  isoMillis,
  messageAttributes,
  orderingKey,
  parseWal2json,
  typedRow,
} from './expected-events.ts'
import type { PublishedMessage } from './pubsub.ts'
import { type Stack, TOPIC } from './stack.ts'

export const VERIFY_SLOT = 'verify'
const TRACKED = ['workspaces', 'tasks'] as const
type Table = (typeof TRACKED)[number]

// ---------------------------------------------------------------------------------------------------------------
// The expected changes

export type ExpectedChange = RowChangeFacts

/** Our own slot, to be created once the connector's slot exists and before the workload. */
export async function createVerificationSlot(sql: postgres.Sql, slot = VERIFY_SLOT) {
  await sql`select pg_create_logical_replication_slot(${slot}, 'wal2json')`
}

/** Two hex numbers of "X/Y", each zero-padded to 8 upper-case digits. */
export function lsnHex16(lsn: string): string {
  const [high, low] = lsn.split('/')
  if (high === undefined || low === undefined) throw new Error(`not an LSN: ${lsn}`)
  return high.toUpperCase().padStart(8, '0') + low.toUpperCase().padStart(8, '0')
}

/** An event id's second part: the change's ordinal in its transaction, 8 upper-case hex digits. */
export const ordinalHex = (ordinal: number) => ordinal.toString(16).toUpperCase().padStart(8, '0')

type Wal2jsonChange = {
  action: string
  xid?: number
  nextlsn?: string
  timestamp?: string
  table?: string
  columns?: Wal2jsonColumn[]
  identity?: Wal2jsonColumn[]
}

const ACTION_KIND: Record<string, ExpectedChange['kind']> = { I: 'insert', U: 'update', D: 'delete', T: 'truncate' }

/**
 * Every row change the slot holds, in commit order, with the event id the contract gives it. Peeks: the slot
 * keeps them. Decoding reads only flushed WAL, and the test server commits asynchronously: what was committed
 * before the call is waited for first.
 */
export async function expectedChanges(sql: postgres.Sql, slot = VERIFY_SLOT): Promise<ExpectedChange[]> {
  const [{ committed }] = await sql<[{ committed: string }]>`select pg_current_wal_insert_lsn()::text as committed`
  for (let waited = 0; ; waited += 50) {
    const [{ flushed }] = await sql<[{ flushed: boolean }]>`select pg_current_wal_flush_lsn() >= ${committed}::pg_lsn as flushed`
    if (flushed) break
    if (waited > 10_000) throw new Error(`WAL not flushed to ${committed} after 10 s`)
    await Bun.sleep(50)
  }
  // Every column of each table, camelCase: what an update's columns lack, it did not log.
  const columnsOf = new Map<string, string[]>()
  for (const { table, name } of await sql<{ table: string; name: string }[]>`
    select table_name as table, column_name as name from information_schema.columns
    where table_schema = 'public' and table_name in ${sql(TRACKED)} order by ordinal_position`)
    columnsOf.set(table, [...(columnsOf.get(table) ?? []), camelCase(name)])
  const changes: ExpectedChange[] = []
  let transaction: { hex: string; lsn: string; xid: number; commitTime: string; ordinal: number } | null = null
  const rows = sql<{ data: string }[]>`
    select data from pg_logical_slot_peek_changes(${slot}, null, null,
      'format-version', '2', 'include-lsn', '1', 'include-transaction', '1', 'include-xids', '1',
      'include-timestamp', '1', 'include-types', '1',
      'add-tables', ${TRACKED.map((table) => `public.${table}`).join(',')})`.cursor(2_000)
  for await (const page of rows) {
    for (const { data } of page) {
      const change = parseWal2json<Wal2jsonChange>(data)
      if (change.action === 'B') {
        transaction = { hex: lsnHex16(change.nextlsn!), lsn: change.nextlsn!, xid: change.xid!, commitTime: isoMillis(change.timestamp!), ordinal: 0 }
        continue
      }
      if (change.action === 'C') {
        if (!transaction || change.nextlsn !== transaction.lsn) throw new Error(`commit ${change.nextlsn} does not close begin ${transaction?.lsn}`)
        transaction = null
        continue
      }
      const kind = ACTION_KIND[change.action]
      if (!kind) continue // logical messages (the connector's heartbeat)
      if (!transaction) throw new Error(`change outside a transaction: ${data.slice(0, 200)}`)
      const table = change.table as Table
      const columns = change.columns ?? change.identity
      const row = kind === 'truncate' || !columns ? null : typedRow(columns)
      const fact = (kind: ExpectedChange['kind'], row: EventRow | null): ExpectedChange => ({
        id: `${transaction!.hex}-${ordinalHex(transaction!.ordinal++)}`,
        table,
        kind,
        rowId: (row?.id as string | undefined) ?? null,
        lsn: transaction!.lsn,
        xid: transaction!.xid,
        commitTime: transaction!.commitTime,
        row,
        unlogged: kind === 'update' || kind === 'insert' ? columnsOf.get(table)!.filter((column) => !(column in row!)) : [],
      })
      // A key change (contract section 2): the old id's deletion, then the new id's creation.
      const oldKey = kind === 'update' && change.identity ? typedRow(change.identity).id : undefined
      if (oldKey !== undefined && oldKey !== row!.id) changes.push(fact('delete', { id: oldKey }), { ...fact('insert', row), keyFrom: oldKey as string })
      else changes.push(fact(kind, row))
    }
  }
  return changes
}

// ---------------------------------------------------------------------------------------------------------------
// What reached the sinks

export type Published = {
  messages: number
  /** Publish count of each event id. */
  counts: Map<string, number>
  /** Ids published more than once whose copies are not the same event (a replay must republish it as it was). */
  differingCopies: string[]
  /** The first copy of each event id, in the order of first delivery. */
  first: Map<string, PublishedMessage>
}

/** Everything published to the test topic. Throws if a message's data and its eventId attribute disagree. */
export async function published(stack: Stack): Promise<Published> {
  const messages = await stack.pubsub.messages(TOPIC)
  const counts = new Map<string, number>()
  const first = new Map<string, PublishedMessage>()
  const differingCopies = new Set<string>()
  for (const message of messages) {
    const data = message.data.toString()
    const { id } = JSON.parse(data) as { id: string }
    if (message.attributes.eventId !== id) throw new Error(`message ${message.id}: attribute eventId ${message.attributes.eventId} but data id ${id}`)
    counts.set(id, (counts.get(id) ?? 0) + 1)
    const earlier = first.get(id)?.data.toString()
    if (earlier === undefined) first.set(id, message)
    else if (earlier !== data && !Bun.deepEquals(JSON.parse(earlier), JSON.parse(data))) differingCopies.add(id)
  }
  return { messages: messages.length, counts, differingCopies: [...differingCopies], first }
}

export type StoredEvents = { documents: number; byId: Map<string, Document> }

/** Every document of task_events, read once: a full read is slow on FerretDB. */
export async function storedEvents(db: Db): Promise<StoredEvents> {
  const byId = new Map<string, Document>()
  let documents = 0
  for await (const document of db.collection<Document & { _id: string }>('task_events').find({})) {
    documents++
    byId.set(document._id, document)
  }
  return { documents, byId }
}

/**
 * Every distinct event id on the test topic, in the order of first delivery, and the number of messages.
 * Streamed, reading ids only: fit for a million messages.
 */
export async function publishedIds(stack: Stack): Promise<{ messages: number; ids: Set<string> }> {
  const ids = new Set<string>()
  let messages = 0
  await stack.pubsub.eachMessage(TOPIC, (message) => {
    messages++
    ids.add(message.attributes.eventId!)
  })
  return { messages, ids }
}

/** Between these bounds, inclusive, lie all event ids (contract section 2: hex digits and one '-'). */
export const ALL_IDS = { from: '0', to: 'G' }

/**
 * The ids of task_events in [from, to], in order: a range scan of `_id` that returns nothing else, so even a
 * million documents are counted exactly. Sorted here: FerretDB would sort whole documents in its memory.
 */
export async function storedIds(db: Db, { from, to } = ALL_IDS): Promise<string[]> {
  const ids: string[] = []
  const cursor = db.collection<{ _id: string }>('task_events').find({ _id: { $gte: from, $lte: to } }, { projection: { _id: 1 } })
  for await (const { _id } of cursor) ids.push(_id)
  return ids.sort()
}

/** At most this many examples of each kind of difference, so a failure stays readable. */
const EXAMPLES = 5

export type SetDifference = { expected: number; actual: number; missing: number; unexpected: number; examples: { missing: string[]; unexpected: string[] } }

/** How `actual` differs from `expected`; all zero but the two sizes when they hold the same ids. */
export function setDifference(expected: Iterable<string>, actual: Iterable<string>, actualCount?: number): SetDifference {
  const want = new Set(expected)
  const have = new Set(actual)
  const missing = [...want].filter((id) => !have.has(id))
  const unexpected = [...have].filter((id) => !want.has(id))
  return {
    expected: want.size,
    actual: actualCount ?? have.size,
    missing: missing.length,
    unexpected: unexpected.length,
    examples: { missing: missing.slice(0, EXAMPLES), unexpected: unexpected.slice(0, EXAMPLES) },
  }
}

/** task_events against the expected changes: `actual` counts documents, so a duplicate would show there. */
export function storedEventsDifference(stored: StoredEvents, expected: ExpectedChange[]): SetDifference {
  return setDifference(expected.map((change) => change.id), stored.byId.keys(), stored.documents)
}

export type PublishedDifference = SetDifference & { messages: number; duplicates: number; differingCopies: number; examples: { differingCopies: string[] } }

/** Pub/Sub against the expected changes: every id at least once, none that is not a change, copies alike. */
export function publishedDifference({ messages, counts, differingCopies }: Published, expected: ExpectedChange[]): PublishedDifference {
  const difference = setDifference(expected.map((change) => change.id), counts.keys())
  return {
    ...difference,
    messages,
    duplicates: messages - counts.size,
    differingCopies: differingCopies.length,
    examples: { ...difference.examples, differingCopies: differingCopies.slice(0, EXAMPLES) },
  }
}

// ---------------------------------------------------------------------------------------------------------------
// State: the collections against the tables

/** BSON dates hold milliseconds: a timestamp's microseconds are cut off, as the connector does. */
function timestampToDate(text: string): Date {
  return new Date(text.replace(/(\.\d{1,3})\d*/, '$1'))
}

/**
 * The documents a table's rows must have in MongoDB (without `_id`, `lastEventId`), by id: every column,
 * camelCase keys, timestamps as dates, jsonb as objects, arrays as arrays. Read through `row_to_json`, so the
 * conversion is PostgreSQL's own and not the connector's decoder.
 */
export async function tableDocuments(sql: postgres.Sql, table: Table): Promise<Map<string, Document>> {
  const timestamps = new Set(
    (await sql<{ name: string }[]>`
      select column_name as name from information_schema.columns
      where table_schema = 'public' and table_name = ${table} and data_type like 'timestamp%'`).map(({ name }) => name),
  )
  const documents = new Map<string, Document>()
  const rows = sql<{ json: string }[]>`select row_to_json(t)::text as json from ${sql(table)} t`.cursor(5_000)
  for await (const page of rows) {
    for (const { json } of page) {
      const row = JSON.parse(json) as Record<string, unknown>
      const document: Document = {}
      for (const [column, value] of Object.entries(row))
        document[camelCase(column)] = timestamps.has(column) && typeof value === 'string' ? timestampToDate(value) : value
      documents.set(String(row.id), document)
    }
  }
  return documents
}

export type StateDifference = {
  rows: number
  documents: number
  /** Rows with no document, or only a tombstone. */
  missing: string[]
  /** Live documents whose fields differ from the row: `id: field expected ≠ actual`. */
  different: string[]
  /** Live documents of rows that do not exist. */
  extra: string[]
  /** Rows the changes deleted that have no tombstone. */
  withoutTombstone: string[]
  /** Documents whose lastEventId is not the id of the row's last change. */
  wrongLastEvent: string[]
  counts: { missing: number; different: number; extra: number; withoutTombstone: number; wrongLastEvent: number }
}

const STATE_FIELDS = new Set(['_id', 'lastEventId', 'deleted'])

function describeValue(value: unknown): string {
  return value instanceof Date ? value.toISOString() : JSON.stringify(value)?.slice(0, 80) ?? 'undefined'
}

/** The fields in which a live document differs from the row's document, described. */
function fieldDifferences(want: Document, have: Document): string[] {
  const out: string[] = []
  for (const key of new Set([...Object.keys(want), ...Object.keys(have)])) {
    if (STATE_FIELDS.has(key)) continue
    if (!Bun.deepEquals(want[key], have[key])) out.push(`${key} ${describeValue(want[key])} ≠ ${describeValue(have[key])}`)
  }
  return out
}

/**
 * `tasks` or `workspaces` against its table: every row as a live document with the row's fields, a tombstone
 * for every row the changes deleted, no live document for a row that does not exist, and each document's
 * `lastEventId` the id of its row's last change among `expected`.
 */
export async function stateDifference(sql: postgres.Sql, db: Db, table: Table, expected: ExpectedChange[]): Promise<StateDifference> {
  const rows = await tableDocuments(sql, table)
  const documents = new Map<string, Document>()
  for (const document of await db.collection<Document & { _id: string }>(table).find({}).toArray()) documents.set(document._id, document)

  const lastChange = new Map<string, ExpectedChange>()
  for (const change of expected) if (change.table === table && change.rowId) lastChange.set(change.rowId, change)

  const all = { missing: [] as string[], different: [] as string[], extra: [] as string[], withoutTombstone: [] as string[], wrongLastEvent: [] as string[] }
  for (const [id, row] of rows) {
    const document = documents.get(id)
    if (!document || document.deleted === true) all.missing.push(id)
    else {
      const differences = fieldDifferences(row, document)
      if (differences.length) all.different.push(`${id}: ${differences.join('; ')}`)
    }
  }
  for (const [id, document] of documents) if (!rows.has(id) && document.deleted !== true) all.extra.push(id)
  for (const [id, change] of lastChange) {
    const document = documents.get(id)
    if (change.kind === 'delete' && !rows.has(id) && document?.deleted !== true) all.withoutTombstone.push(id)
    if (document && document.lastEventId !== change.id) all.wrongLastEvent.push(`${id}: ${change.id} ≠ ${document.lastEventId}`)
  }
  const examples = (list: string[]) => list.slice(0, EXAMPLES)
  return {
    rows: rows.size,
    documents: documents.size,
    missing: examples(all.missing),
    different: examples(all.different),
    extra: examples(all.extra),
    withoutTombstone: examples(all.withoutTombstone),
    wrongLastEvent: examples(all.wrongLastEvent),
    counts: {
      missing: all.missing.length,
      different: all.different.length,
      extra: all.extra.length,
      withoutTombstone: all.withoutTombstone.length,
      wrongLastEvent: all.wrongLastEvent.length,
    },
  }
}

/** The same for a table with no difference: what a passing check compares against. */
export function noStateDifference(difference: StateDifference): StateDifference {
  return {
    ...difference,
    missing: [],
    different: [],
    extra: [],
    withoutTombstone: [],
    wrongLastEvent: [],
    counts: { missing: 0, different: 0, extra: 0, withoutTombstone: 0, wrongLastEvent: 0 },
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Content: what each event says, against the event its change makes (expected-events.ts); and its order

export type ContentDifference = { checked: number; wrong: number; examples: string[] }

/** `differences` says how a sink's copy of an event differs from `want`, or null when the sink lacks it (counted elsewhere). */
function contentDifference(expected: ExpectedChange[], differences: (want: ExpectedEvent) => string[] | null): ContentDifference {
  const examples: string[] = []
  let checked = 0
  let wrong = 0
  for (const want of expectedEvents(expected)) {
    const found = differences(want)
    if (!found) continue
    checked++
    if (!found.length) continue
    if (wrong++ < EXAMPLES) examples.push(`${want.id} (${want.type} ${want.taskId ?? want.workspaceId}): ${found.join('; ')}`)
  }
  return { checked, wrong, examples }
}

/** A task_events document in the events' JSON form: `_id` as `id`, BSON dates as ISO-8601 text. */
function storedAsEvent({ _id, ...fields }: Document): Record<string, unknown> {
  const json = (value: unknown): unknown =>
    value instanceof Date ? value.toISOString()
    : value && typeof value === 'object' && !Array.isArray(value) ? Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, json(inner)]))
    : value
  return { id: _id, ...(json(fields) as Record<string, unknown>) }
}

/** Each stored event against the event its change makes: every field, `data`, `previous`, `changed` and `transition` included. */
export function historyDifference(stored: StoredEvents, expected: ExpectedChange[]): ContentDifference {
  return contentDifference(expected, (want) => {
    const document = stored.byId.get(want.id)
    return document ? eventDifferences(want, storedAsEvent(document)) : null
  })
}

/** The first copy of each published event against the event its change makes, with its attributes and ordering key. */
export function publishedContentDifference({ first }: Published, expected: ExpectedChange[]): ContentDifference {
  return contentDifference(expected, (want) => {
    const message = first.get(want.id)
    if (!message) return null
    const differences = eventDifferences(want, JSON.parse(message.data.toString()))
    const attributes = messageAttributes(want)
    if (!Bun.deepEquals(attributes, message.attributes)) differences.push(`attributes ${JSON.stringify(attributes)} ≠ ${JSON.stringify(message.attributes)}`)
    if (message.orderingKey !== orderingKey(want)) differences.push(`orderingKey ${orderingKey(want)} ≠ ${message.orderingKey}`)
    return differences
  })
}

export type OrderDifference = { keys: number; outOfOrder: number; examples: string[] }

/** Per ordering key, the first delivery of each event in id order (commit order): a subscriber never sees a later change first. */
export function orderDifference({ first }: Published): OrderDifference {
  const latest = new Map<string, string>()
  const examples: string[] = []
  let outOfOrder = 0
  for (const [id, { orderingKey: key }] of first) {
    const before = latest.get(key)
    if (before !== undefined && before > id) {
      if (outOfOrder++ < EXAMPLES) examples.push(`${key}: ${id} first delivered after ${before}`)
    } else latest.set(key, id)
  }
  return { keys: latest.size, outOfOrder, examples }
}

// ---------------------------------------------------------------------------------------------------------------
// Everything at once

export type Verification = {
  changes: number
  published: PublishedDifference
  /** The first copy of each published event, field by field. */
  publishedContent: ContentDifference
  /** First deliveries per ordering key. */
  order: OrderDifference
  stored: SetDifference
  /** Each task_events document, field by field. */
  history: ContentDifference
  tasks: StateDifference
  workspaces: StateDifference
}

/** Every check, for one `expect(verification).toEqual(passing(verification))` that shows all that differs. */
export async function verifyAll(stack: Stack, expected: ExpectedChange[]): Promise<Verification> {
  const [messages, stored, tasks, workspaces] = await Promise.all([
    published(stack),
    storedEvents(stack.db),
    stateDifference(stack.pg.sql, stack.db, 'tasks', expected),
    stateDifference(stack.pg.sql, stack.db, 'workspaces', expected),
  ])
  return {
    changes: expected.length,
    published: publishedDifference(messages, expected),
    publishedContent: publishedContentDifference(messages, expected),
    order: orderDifference(messages),
    stored: storedEventsDifference(stored, expected),
    history: historyDifference(stored, expected),
    tasks,
    workspaces,
  }
}

/** What `verifyAll` answers when nothing was lost and nothing applied twice. */
export function passing(verification: Verification): Verification {
  const clean = (difference: SetDifference): SetDifference => ({
    ...difference,
    actual: difference.expected,
    missing: 0,
    unexpected: 0,
    examples: { missing: [], unexpected: [] },
  })
  return {
    ...verification,
    published: {
      ...verification.published,
      ...clean(verification.published),
      differingCopies: 0,
      examples: { missing: [], unexpected: [], differingCopies: [] },
    },
    publishedContent: { checked: verification.publishedContent.checked, wrong: 0, examples: [] },
    order: { keys: verification.order.keys, outOfOrder: 0, examples: [] },
    stored: clean(verification.stored),
    history: { checked: verification.history.checked, wrong: 0, examples: [] },
    tasks: noStateDifference(verification.tasks),
    workspaces: noStateDifference(verification.workspaces),
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The workload

/** Small, fast, and the same sequence on every machine. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const STATUSES = ['todo', 'in_progress', 'blocked', 'done', 'cancelled'] as const
// Over PostgreSQL's TOAST threshold even compressed: random base-36 text.
const LONG_DESCRIPTION_CHARS = 4_000

export type WorkloadOptions = {
  seed: number
  /** Stop after at least this many row changes (default: until stop()). */
  changes?: number
  /** Pace: row changes per second at most (default: as fast as the server takes them). */
  perSecond?: number
  /** Awaited before each transaction with the changes written so far: lets a test hold the writer back. */
  pace?(written: number): Promise<void>
  /** Rows of the next transaction. */
  transactionRows?: (random: () => number) => number
  /**
   * Keep writing through failed transactions (a server restart): wait, read the live rows back from the
   * tables and go on. A failed transaction is rolled back or committed whole; the expected changes come
   * from the slot either way. Otherwise the first failure ends the workload.
   */
  survive?: boolean
}

export type WorkloadStats = { changes: number; transactions: number; largest: number; seconds: number; failed: number }

export type Workload = {
  /** Resolves when `changes` are written, or after stop(); rejects if a write fails. */
  done: Promise<WorkloadStats>
  /** Finishes the transaction being written and stops. */
  stop(): Promise<WorkloadStats>
  readonly changes: number
}

/** Mostly small transactions, some of hundreds of rows, a few of thousands. */
export const LARGEST_TRANSACTION_ROWS = 3_000

export function variedTransactionRows(random: () => number): number {
  const pick = random()
  const between = (low: number, high: number) => low + Math.floor(random() * (high - low + 1))
  return pick < 0.6 ? between(1, 3) : pick < 0.9 ? between(4, 50) : pick < 0.99 ? between(51, 500) : between(501, LARGEST_TRANSACTION_ROWS)
}

/**
 * Writes a seeded mix of changes, one transaction after the other: task inserts, updates (status changes,
 * and others that leave the status, or a long description, as it was) and deletes, workspace inserts,
 * renames and deletes (which cascade to their tasks). The same seed writes the same statements.
 */
export function startWorkload(sql: postgres.Sql, options: WorkloadOptions): Workload {
  const random = mulberry32(options.seed)
  const between = (low: number, high: number) => low + Math.floor(random() * (high - low + 1))
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  const uuid = () => {
    const hex = Array.from({ length: 4 }, () => Math.floor(random() * 2 ** 32).toString(16).padStart(8, '0')).join('')
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`
  }
  const text = (length: number) => Array.from({ length: Math.ceil(length / 6) }, () => Math.floor(random() * 36 ** 6).toString(36)).join('').slice(0, length)
  const transactionRows = options.transactionRows ?? variedTransactionRows
  const target = options.changes ?? Infinity

  // The live rows, so updates and deletes pick rows that exist.
  const workspaces: string[] = []
  const tasksOf = new Map<string, Set<string>>()
  const liveTasks: string[] = []
  const taskIndex = new Map<string, number>()
  const workspaceOf = new Map<string, string>()

  const addTask = (id: string, workspaceId: string) => {
    taskIndex.set(id, liveTasks.length)
    liveTasks.push(id)
    workspaceOf.set(id, workspaceId)
    tasksOf.get(workspaceId)!.add(id)
  }
  const removeTask = (id: string) => {
    const index = taskIndex.get(id)!
    const last = liveTasks.pop()!
    if (last !== id) {
      liveTasks[index] = last
      taskIndex.set(last, index)
    }
    taskIndex.delete(id)
    tasksOf.get(workspaceOf.get(id)!)!.delete(id)
    workspaceOf.delete(id)
  }
  const distinctTasks = (count: number) => {
    const chosen = new Set<string>()
    while (chosen.size < Math.min(count, liveTasks.length)) chosen.add(pick(liveTasks))
    return [...chosen]
  }

  type Statement = (tx: postgres.TransactionSql) => Promise<unknown>

  function insertTasks(count: number): Statement {
    const rows = Array.from({ length: count }, () => {
      const row = {
        id: uuid(),
        workspace_id: pick(workspaces),
        title: `task ${text(8)}`,
        description: random() < 0.03 ? text(LONG_DESCRIPTION_CHARS) : random() < 0.5 ? null : text(between(10, 200)),
        status: pick(STATUSES),
        priority: between(0, 5),
        assignee_id: random() < 0.5 ? uuid() : null,
        due_at: random() < 0.3 ? new Date(Date.UTC(2030, 0, 1) + between(0, 10 ** 6) * 1_000 + between(0, 999_999) / 1_000).toISOString() : null,
        labels: Array.from({ length: between(0, 3) }, () => `label-${between(0, 9)}`),
        metadata: random() < 0.5 ? {} : { n: between(0, 1000), nested: { tag: text(4), list: [between(0, 9), between(0, 9)] } },
      }
      addTask(row.id, row.workspace_id)
      return row
    })
    return (tx) => tx`
      insert into tasks (id, workspace_id, title, description, status, priority, assignee_id, due_at, labels, metadata)
      select id, workspace_id, title, description, status, priority, assignee_id, due_at, labels, metadata
      from jsonb_to_recordset(${tx.json(rows as any)}::jsonb) as r(id uuid, workspace_id uuid, title text, description text,
        status text, priority int, assignee_id uuid, due_at timestamptz, labels text[], metadata jsonb)`
  }

  function updateTasks(count: number): Statement {
    const rows = distinctTasks(count).map((id) => {
      const kind = random()
      // A third change the status, the rest other columns; a long description stays as it was unless rewritten.
      return {
        id,
        status: kind < 0.35 ? pick(STATUSES) : null,
        title: kind >= 0.35 && random() < 0.5 ? `task ${text(8)}` : null,
        priority: random() < 0.5 ? between(0, 5) : null,
        ...(random() < 0.05
          ? { set_description: true, description: random() < 0.5 ? text(LONG_DESCRIPTION_CHARS) : text(between(10, 200)) }
          : { set_description: false, description: null }),
        set_assignee: random() < 0.2,
        assignee_id: random() < 0.5 ? uuid() : null,
        labels: random() < 0.2 ? Array.from({ length: between(0, 3) }, () => `label-${between(0, 9)}`) : null,
        metadata: random() < 0.3 ? { n: between(0, 1000), touched: true } : null,
        touch: random() < 0.8,
      }
    })
    return (tx) => tx`
      update tasks t set
        status = coalesce(u.status, t.status),
        title = coalesce(u.title, t.title),
        priority = coalesce(u.priority, t.priority),
        description = case when u.set_description then u.description else t.description end,
        assignee_id = case when u.set_assignee then u.assignee_id else t.assignee_id end,
        labels = coalesce(u.labels, t.labels),
        metadata = t.metadata || coalesce(u.metadata, '{}'),
        updated_at = case when u.touch then clock_timestamp() else t.updated_at end
      from jsonb_to_recordset(${tx.json(rows as any)}::jsonb) as u(id uuid, status text, title text, priority int,
        set_description boolean, description text, set_assignee boolean, assignee_id uuid, labels text[], metadata jsonb, touch boolean)
      where t.id = u.id`
  }

  function deleteTasks(count: number): Statement {
    const ids = distinctTasks(count)
    for (const id of ids) removeTask(id)
    return (tx) => tx`delete from tasks where id = any(${ids}::uuid[])`
  }

  function insertWorkspaces(count: number): Statement {
    const rows = Array.from({ length: count }, () => ({ id: uuid(), name: `workspace ${text(6)}` }))
    for (const { id } of rows) {
      workspaces.push(id)
      tasksOf.set(id, new Set())
    }
    return (tx) => tx`insert into workspaces ${tx(rows)}`
  }

  function renameWorkspace(): Statement {
    const id = pick(workspaces)
    const name = `workspace ${text(6)}`
    return (tx) => tx`update workspaces set name = ${name}, updated_at = clock_timestamp() where id = ${id}`
  }

  /** Deletes a workspace with at most `budget - 1` tasks (they go with it); null when none is that small. */
  function deleteWorkspace(budget: number): { statement: Statement; changes: number } | null {
    if (workspaces.length < 4) return null
    const id = pick(workspaces)
    const tasks = [...tasksOf.get(id)!]
    if (tasks.length + 1 > budget) return null
    for (const task of tasks) removeTask(task)
    workspaces.splice(workspaces.indexOf(id), 1)
    tasksOf.delete(id)
    return { statement: (tx) => tx`delete from workspaces where id = ${id}`, changes: tasks.length + 1 }
  }

  /** The statements of one transaction of about `rows` row changes, and their exact number. */
  function planTransaction(rows: number): { statements: Statement[]; changes: number } {
    const statements: Statement[] = []
    let left = rows
    while (left > 0) {
      const kind = random()
      const size = between(1, left)
      if (workspaces.length === 0 || kind < 0.01) {
        const count = Math.min(size, 3)
        statements.push(insertWorkspaces(count))
        left -= count
      } else if (kind < 0.03) {
        statements.push(renameWorkspace())
        left -= 1
      } else if (kind < 0.035) {
        const deleted = deleteWorkspace(left)
        if (deleted) {
          statements.push(deleted.statement)
          left -= deleted.changes
        }
      } else if (kind < 0.45 || liveTasks.length < 100) {
        statements.push(insertTasks(size))
        left -= size
      } else if (kind < 0.85) {
        const count = Math.min(size, liveTasks.length)
        statements.push(updateTasks(count))
        left -= count
      } else {
        const count = Math.min(size, liveTasks.length)
        statements.push(deleteTasks(count))
        left -= count
      }
    }
    return { statements, changes: rows - left }
  }

  /** After a failed transaction the model may be wrong: the tables say which rows live. */
  async function reload() {
    const [workspaceRows, taskRows] = await Promise.all([
      sql<{ id: string }[]>`select id from workspaces order by id`,
      sql<{ id: string; workspace_id: string }[]>`select id, workspace_id from tasks order by id`,
    ])
    workspaces.length = 0
    tasksOf.clear()
    liveTasks.length = 0
    taskIndex.clear()
    workspaceOf.clear()
    for (const { id } of workspaceRows) {
      workspaces.push(id)
      tasksOf.set(id, new Set())
    }
    for (const { id, workspace_id } of taskRows) addTask(id, workspace_id)
  }

  const stats: WorkloadStats = { changes: 0, transactions: 0, largest: 0, seconds: 0, failed: 0 }
  let stopping = false
  const startedAt = performance.now()

  const done = (async () => {
    while (!stopping && stats.changes < target) {
      await options.pace?.(stats.changes)
      if (stopping) break
      const { statements, changes } = planTransaction(Math.min(transactionRows(random), target - stats.changes))
      try {
        await sql.begin(async (tx) => {
          for (const statement of statements) await statement(tx)
        })
      } catch (error) {
        if (!options.survive) throw error
        stats.failed++
        for (;;) {
          await Bun.sleep(250)
          if (stopping) break
          if (await reload().then(() => true, () => false)) break
        }
        continue
      }
      stats.changes += changes
      stats.transactions++
      stats.largest = Math.max(stats.largest, changes)
      if (options.perSecond) {
        const ahead = (stats.changes / options.perSecond) * 1000 - (performance.now() - startedAt)
        if (ahead > 0) await Bun.sleep(ahead)
      }
    }
    stats.seconds = (performance.now() - startedAt) / 1000
    return stats
  })()

  return {
    done,
    async stop() {
      stopping = true
      return done
    },
    get changes() {
      return stats.changes
    },
  }
}
