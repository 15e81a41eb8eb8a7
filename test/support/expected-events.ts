// The events the contract (section 2) says a run of row changes makes, worked out without the connector:
// rows typed from wal2json's own JSON (format-version 2, with column type names), then replayed in commit
// order so that each change knows the row before it, as a connector under REPLICA IDENTITY DEFAULT knows it
// from its own last state. Never calls the product's decoder or event code: it is what they are checked against.

/** A row in the events' shape: camelCase keys, typed JSON values. */
export type EventRow = Record<string, unknown>

export type Wal2jsonColumn = { name: string; type?: string; value: unknown }

export const camelCase = (name: string) => name.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase())

/** wal2json's JSON, with every number of a column's value kept as its text: int8 and numeric must not round. */
export function parseWal2json<T>(text: string): T {
  return JSON.parse(text, (key, value, context?: { source?: string }) =>
    key === 'value' && typeof value === 'number' && context?.source !== undefined ? context.source : value)
}

// "2030-01-01 00:16:40.123456+00": PostgreSQL's ISO output in any session time zone.
const PG_TIMESTAMP = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?([+-]\d\d)(?::(\d\d))?$/

/** ISO-8601 UTC with milliseconds, microseconds cut off (a JS Date holds milliseconds). */
export function isoMillis(text: string): string {
  const match = PG_TIMESTAMP.exec(text)
  if (!match) throw new Error(`the oracle reads no timestamp like ${JSON.stringify(text)}`)
  const [, date, time, fraction = '', zoneHours, zoneMinutes = '00'] = match
  return new Date(`${date}T${time}.${(fraction + '000').slice(0, 3)}${zoneHours}:${zoneMinutes}`).toISOString()
}

/** One-dimensional array literals (`{a,"b c",NULL}`), the only kind the tracked tables hold. */
function arrayElements(text: string): (string | null)[] {
  if (!text.startsWith('{') || !text.endsWith('}') || text.startsWith('{{')) throw new Error(`the oracle reads no array like ${text.slice(0, 80)}`)
  const elements: (string | null)[] = []
  const body = text.slice(1, -1)
  if (!body) return elements
  let at = 0
  for (;;) {
    if (body[at] === '"') {
      let element = ''
      for (at++; body[at] !== '"'; at++) element += body[at] === '\\' ? body[++at] : body[at]
      elements.push(element)
      at++
    } else {
      const end = body.indexOf(',', at) < 0 ? body.length : body.indexOf(',', at)
      const element = body.slice(at, end)
      elements.push(element === 'NULL' ? null : element)
      at = end
    }
    if (at >= body.length) return elements
    at++ // ','
  }
}

/** A value as the contract types it, from wal2json's value (numbers as their text) and the column's type name. */
function typedValue(type: string, value: unknown): unknown {
  if (value === null) return null
  if (type.endsWith('[]')) return arrayElements(value as string).map((element) => typedValue(type.slice(0, -2), element))
  switch (type) {
    case 'timestamp with time zone':
    case 'timestamp without time zone':
      return isoMillis(value as string)
    case 'json':
    case 'jsonb':
      return JSON.parse(value as string)
    case 'bigint': {
      const number = Number(value)
      return Number.isSafeInteger(number) ? number : String(value)
    }
    case 'numeric':
      return String(value)
    case 'smallint':
    case 'integer':
    case 'real':
    case 'double precision':
      return Number(value)
    case 'boolean':
      return typeof value === 'string' ? value === 't' || value === 'true' : value
    default:
      return value
  }
}

/** wal2json's columns as a row of the events: camelCase keys, typed values. */
export function typedRow(columns: Wal2jsonColumn[]): EventRow {
  const row: EventRow = {}
  for (const column of columns) {
    if (column.type === undefined) throw new Error(`column ${column.name} without its type: the oracle peeks with include-types`)
    row[camelCase(column.name)] = typedValue(column.type, column.value)
  }
  return row
}

// ---------------------------------------------------------------------------------------------------------------
// The replay

export type RowChangeFacts = {
  id: string
  table: 'workspaces' | 'tasks'
  kind: 'insert' | 'update' | 'delete' | 'truncate'
  rowId: string | null
  lsn: string
  xid: number
  commitTime: string
  /** insert, update: the row after the change, without the columns it did not log; delete: the key. */
  row: EventRow | null
  /** The camelCase columns an update did not log (unchanged TOAST values). */
  unlogged: string[]
  /** The creation half of a key change: the old id, whose last state fills the columns it did not log. */
  keyFrom?: string
}

export type ExpectedEvent = {
  id: string
  type: string
  source: 'cdc'
  workspaceId: string | null
  taskId: string | null
  lsn: string
  xid: number
  commitTime: string
  data: EventRow | null
  previous: EventRow | null
  changed?: string[]
  transition?: { from: string | null; to: string | null }
  unchangedToast?: string[]
}

const ENTITY = { tasks: 'task', workspaces: 'workspace' } as const
const VERB = { insert: 'created', update: 'updated', delete: 'deleted' } as const

/**
 * Each change's event, in the order of `changes` (commit order). A row the changes did not create has no
 * known state: its update's `previous` is null, `changed` empty, an unlogged column named in `unchangedToast`.
 */
export function* expectedEvents(changes: Iterable<RowChangeFacts>): Generator<ExpectedEvent> {
  const state = new Map<string, EventRow>()
  // The state each row had when it was deleted: a key change's creation fills unlogged columns from it.
  const deleted = new Map<string, EventRow | null>()
  for (const change of changes) {
    const base = { id: change.id, source: 'cdc' as const, lsn: change.lsn, xid: change.xid, commitTime: change.commitTime }
    if (change.kind === 'truncate') {
      for (const key of state.keys()) if (key.startsWith(`${change.table}:`)) state.delete(key)
      yield { ...base, type: `${change.table}.truncated`, workspaceId: null, taskId: null, data: null, previous: null }
      continue
    }
    const key = `${change.table}:${change.rowId}`
    const known = state.get(key) ?? null
    const previous = change.kind === 'insert' ? null : known
    const data = change.kind === 'delete' ? null : { ...change.row }
    const event: ExpectedEvent = { ...base, type: `${ENTITY[change.table]}.${VERB[change.kind]}`, workspaceId: null, taskId: null, data, previous }
    const filledFrom = change.kind === 'update' ? known : change.keyFrom !== undefined ? (deleted.get(`${change.table}:${change.keyFrom}`) ?? null) : null
    const unchangedToast: string[] = []
    for (const column of change.unlogged) {
      if (filledFrom && column in filledFrom) data![column] = filledFrom[column]
      else unchangedToast.push(column)
    }
    if (unchangedToast.length) event.unchangedToast = unchangedToast
    if (change.kind === 'update') event.changed = known ? Object.keys(data!).filter((column) => !Bun.deepEquals(known[column], data![column], true)) : []
    if (data) state.set(key, data)
    else {
      state.delete(key)
      deleted.set(key, known)
    }
    if (change.table === 'tasks') {
      event.taskId = change.rowId
      event.workspaceId = ((data ?? previous ?? change.row)?.workspaceId as string | undefined) ?? null
      const from = change.kind === 'insert' ? null : previous ? (previous.status as string) : undefined
      const to = data ? (data.status as string) : null
      if (from !== undefined && from !== to) event.transition = { from, to }
    } else event.workspaceId = change.rowId
    yield event
  }
}

/** The Pub/Sub ordering key of an event (contract section 3; for a truncate, its table). */
export function orderingKey(event: ExpectedEvent): string {
  return event.taskId ?? event.workspaceId ?? event.type.split('.')[0]!
}

/** The attributes of its Pub/Sub message (contract section 3; those without a value left out). */
export function messageAttributes(event: ExpectedEvent): Record<string, string> {
  const attributes: Record<string, string> = { eventId: event.id, type: event.type, source: event.source, lsn: event.lsn }
  if (event.workspaceId) attributes.workspaceId = event.workspaceId
  if (event.taskId) attributes.taskId = event.taskId
  return attributes
}

/** The fields in which an event differs from what it should be, described; `changed` compared as a set. */
export function eventDifferences(want: ExpectedEvent, have: Record<string, unknown>): string[] {
  const out: string[] = []
  for (const field of new Set([...Object.keys(want), ...Object.keys(have)])) {
    let [wanted, had] = [(want as Record<string, unknown>)[field], have[field]]
    if (field === 'changed' && Array.isArray(wanted) && Array.isArray(had)) [wanted, had] = [[...wanted].sort(), [...had].sort()]
    if (!Bun.deepEquals(wanted, had)) out.push(`${field} ${describe(wanted)} ≠ ${describe(had)}`)
  }
  return out
}

const describe = (value: unknown) => JSON.stringify(value)?.slice(0, 160) ?? 'undefined'
