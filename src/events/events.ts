// Row changes into the contract's task and workspace events (contract section 2).
// Pure: the caller supplies the transaction, the change's ordinal and what it knows of the row before.
// Guarantees: the same inputs give the same event (ids are deterministic); an UPDATE that changes the key is
// the old id's deletion and the new id's creation, with consecutive ordinals; a TOAST value the WAL left
// out is taken from the known previous row, never invented or emitted as a placeholder; when no previous
// row knows it, the event names it in `unchangedToast` instead.

import { type Row, type RowChange, TIMESTAMPS, type Update } from '../decode/types.ts'
import { type Lsn, formatLsn } from '../replication/lsn.ts'
import { eventId } from './ids.ts'
import type { Omitted } from './omit.ts'

export type EventSource = 'cdc' | 'initial' | 'snapshot'
export type Entity = 'task' | 'workspace'
export type EventType =
  | `${Entity}.${'created' | 'updated' | 'deleted' | 'snapshot'}`
  | 'tasks.truncated'
  | 'workspaces.truncated'
  | 'snapshot.completed'

/**
 * A row in the events' shape: camelCase keys, JSON values. Its timestamps (ISO-8601 strings in JSON) are named
 * in TIMESTAMPS, out of the JSON, so that the MongoDB sink stores them as dates by the row's own types.
 */
export type EventRow = Record<string, unknown> & { [TIMESTAMPS]?: string[] }

/** A task's change of status; `fromSince`/`inFromMs` say how long it was in `from` (null: unknown; see life-cycle.ts). */
export type Transition = { from: string | null; to: string | null; fromSince: string | null; inFromMs: number | null }

export type TaskEvent = {
  id: string
  type: EventType
  source: EventSource
  workspaceId: string | null
  taskId: string | null
  lsn: string | null
  xid: number | null
  commitTime: string
  data: EventRow | null
  previous: EventRow | null
  changed?: string[]
  transition?: Transition
  /**
   * Columns (camelCase) that PostgreSQL did not re-log (unchanged TOAST values) and that no known state of the
   * row could fill: `data` lacks them. Absent otherwise.
   */
  unchangedToast?: string[]
  /** Values a sink's copy left out to fit its limit (see omit.ts). Absent otherwise. */
  omitted?: Omitted
}

export type TransactionInfo = { commitLsn: Lsn; xid: number; commitTime: string }

export const TABLE_ENTITY: Record<string, Entity> = { tasks: 'task', workspaces: 'workspace' }

/** The key of the stored row an event is about: its entity and id. */
export function rowKey(change: RowChange): { entity: Entity; id: string } | null {
  const entity = TABLE_ENTITY[change.table]
  if (!entity || change.kind === 'truncate') return null
  return { entity, id: String(change.kind === 'delete' ? change.identity.id : change.row.id) }
}

/** The stored row an event leaves its state in; null for truncates and snapshot markers. */
export function eventRowKey(event: TaskEvent): { entity: Entity; id: string } | null {
  const entity: Entity | null = event.type.startsWith('task.') ? 'task' : event.type.startsWith('workspace.') ? 'workspace' : null
  const id = entity === 'task' ? event.taskId : event.workspaceId
  return entity && id ? { entity, id } : null
}

/**
 * One event for one row change. `known` is the connector's last state of the row (null when unknown or a
 * tombstone); it fills unchanged TOAST columns and serves as `previous` when the WAL has no old row.
 */
export function changeToEvent(change: RowChange, transaction: TransactionInfo, ordinal: number, known: EventRow | null): TaskEvent {
  const entity = TABLE_ENTITY[change.table]
  if (!entity) throw new Error(`change on untracked table ${change.schema}.${change.table}`)
  const base = {
    id: eventId(transaction.commitLsn, ordinal),
    source: 'cdc' as const,
    lsn: formatLsn(transaction.commitLsn),
    xid: transaction.xid,
    commitTime: transaction.commitTime,
  }
  switch (change.kind) {
    case 'truncate':
      return { ...base, type: `${change.table as 'tasks' | 'workspaces'}.truncated`, workspaceId: null, taskId: null, data: null, previous: null }
    case 'insert': {
      const data = camelRow(change.row)
      return withTransition(entity, { ...base, type: `${entity}.created`, ...ids(entity, data), data, previous: null }, null, data)
    }
    case 'update': {
      const previous = oldRow(change.identity, change.row, known)
      const { data, unknown } = filledRow(change, previous)
      const event: TaskEvent = { ...base, type: `${entity}.updated`, ...ids(entity, data), data, previous, changed: previous ? changedKeys(previous, data) : [] }
      if (unknown.length) event.unchangedToast = unknown
      return withTransition(entity, event, previous, data)
    }
    case 'delete': {
      const previous = oldRow(change.identity, null, known)
      const keyRow = camelRow(change.identity)
      const event: TaskEvent = { ...base, type: `${entity}.deleted`, ...ids(entity, { ...previous, ...keyRow }), data: null, previous }
      return withTransition(entity, event, previous, null)
    }
  }
}

/**
 * The events of one row change, with consecutive ordinals from `ordinal`: one, or two for a key change.
 * `stateOf` gives the connector's last state of a row (null when unknown or a tombstone).
 */
export function changeEvents(change: RowChange, transaction: TransactionInfo, ordinal: number, stateOf: (entity: Entity, id: string) => EventRow | null): TaskEvent[] {
  if (change.kind === 'update') {
    const oldId = changedKey(change)
    if (oldId !== null) return keyChangeEvents(change, transaction, ordinal, stateOf(TABLE_ENTITY[change.table]!, oldId))
  }
  const key = rowKey(change)
  return [changeToEvent(change, transaction, ordinal, key ? stateOf(key.entity, key.id) : null)]
}

/** How many events `changeEvents` makes of the change. */
export function eventCount(change: RowChange): 1 | 2 {
  return change.kind === 'update' && changedKey(change) !== null ? 2 : 1
}

/** The old id of an UPDATE that changed the row's key (its identity names another id); null otherwise. */
export function changedKey(change: Update): string | null {
  if (!change.identity || !('id' in change.identity)) return null
  const old = String(change.identity.id)
  return old === String(change.row.id) ? null : old
}

/**
 * The two events of an UPDATE that changed the row's key (contract section 2, "Key changes"): the old id's
 * deletion at `ordinal`, then the new id's creation at `ordinal + 1`. `known` is the state of the old id; it
 * fills the new row's unchanged TOAST columns, as the row kept them.
 */
function keyChangeEvents(change: Update, transaction: TransactionInfo, ordinal: number, known: EventRow | null): [TaskEvent, TaskEvent] {
  const deletion = changeToEvent({ kind: 'delete', schema: change.schema, table: change.table, lsn: change.lsn, identity: change.identity! }, transaction, ordinal, known)
  const creation = changeToEvent({ kind: 'insert', schema: change.schema, table: change.table, lsn: change.lsn, row: change.row }, transaction, ordinal + 1, null)
  const { data, unknown } = filledRow(change, deletion.previous)
  creation.data = data
  if (unknown.length) creation.unchangedToast = unknown
  return [deletion, creation]
}

/** An initial-load or start-job row as a `*.snapshot` event. */
export function snapshotEvent(entity: Entity, data: EventRow, base: { id: string; source: 'initial' | 'snapshot'; lsn: string | null; xid: number | null; commitTime: string }): TaskEvent {
  return { ...base, type: `${entity}.snapshot`, ...ids(entity, data), data, previous: null }
}

/**
 * A stored row that the initial load did not find in the table: its deletion, of source `initial`, with the
 * stored state as `previous`. Nobody committed it at that moment, so a task's transition says only from what.
 */
export function vanishedEvent(entity: Entity, previous: EventRow, base: { id: string; lsn: string; commitTime: string }): TaskEvent {
  const event: TaskEvent = { ...base, source: 'initial', xid: null, type: `${entity}.deleted`, ...ids(entity, previous), data: null, previous }
  return withTransition(entity, event, previous, null)
}

/** The row after an update, its unchanged TOAST columns taken from `previous`; `unknown`: those `previous` lacks. */
function filledRow(change: Update, previous: EventRow | null): { data: EventRow; unknown: string[] } {
  const data = camelRow(change.row)
  const unknown: string[] = []
  // A filled value keeps its type unnamed in TIMESTAMPS: timestamps are fixed-width, never TOASTed.
  for (const column of change.unchangedToast) {
    const key = camelCase(column)
    if (previous && key in previous) data[key] = previous[key]
    else unknown.push(key)
  }
  return { data, unknown }
}

function ids(entity: Entity, row: EventRow): { workspaceId: string | null; taskId: string | null } {
  return entity === 'task'
    ? { workspaceId: (row.workspaceId as string | undefined) ?? null, taskId: (row.id as string | undefined) ?? null }
    : { workspaceId: (row.id as string | undefined) ?? null, taskId: null }
}

function withTransition(entity: Entity, event: TaskEvent, previous: EventRow | null, data: EventRow | null): TaskEvent {
  if (entity !== 'task') return event
  const from = event.type === 'task.created' ? null : ((previous?.status as string | undefined) ?? undefined)
  const to = data ? (data.status as string) : null
  // An update whose old status is unknown cannot say whether the status changed.
  if (from === undefined || from === to) return event
  event.transition = { from, to, fromSince: null, inFromMs: null }
  return event
}

/**
 * The row before the change: the WAL's old row under REPLICA IDENTITY FULL (completed from `known` where
 * it lacks a TOAST value), else `known`. A key-only identity (REPLICA IDENTITY DEFAULT; both tracked
 * tables have a one-column key) is not an old row.
 */
function oldRow(identity: Row | null, row: Row | null, known: EventRow | null): EventRow | null {
  if (!identity) return known
  const keys = Object.keys(identity).length
  const isFull = row ? keys >= Object.keys(row).length : keys > 1
  return isFull ? overlay(known, camelRow(identity)) : known
}

/** `over`'s fields on top of `base`'s, each field typed as in the row it comes from. */
function overlay(base: EventRow | null, over: EventRow): EventRow {
  const merged: EventRow = { ...base, ...over }
  const kept = base?.[TIMESTAMPS]?.filter((key) => !Object.hasOwn(over, key))
  if (kept?.length) merged[TIMESTAMPS] = over[TIMESTAMPS] ? [...kept, ...over[TIMESTAMPS]] : kept
  else if (over[TIMESTAMPS]) merged[TIMESTAMPS] = over[TIMESTAMPS]
  else delete merged[TIMESTAMPS]
  return merged
}

function changedKeys(previous: EventRow, data: EventRow): string[] {
  return Object.keys(data).filter((key) => !sameValue(previous[key], data[key]))
}

export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  return JSON.stringify(a) === JSON.stringify(b)
}

export function camelRow(row: Row): EventRow {
  const out: EventRow = {}
  for (const key in row) out[camelCase(key)] = jsonValue(row[key])
  const timestamps = row[TIMESTAMPS]
  if (timestamps) out[TIMESTAMPS] = timestamps.map(camelCase)
  return out
}

// Exact integers beyond 2^53 leave as decimal strings: JSON numbers that large lose digits in most parsers.
function jsonValue(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (Array.isArray(value)) return value.some((item) => typeof item === 'bigint' || Array.isArray(item)) ? value.map(jsonValue) : value
  return value
}

const camelCache = new Map<string, string>()
export function camelCase(name: string): string {
  let camel = camelCache.get(name)
  if (camel === undefined) {
    camel = name.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase())
    camelCache.set(name, camel)
  }
  return camel
}
