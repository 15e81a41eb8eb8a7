// The latest state of each row as the events built so far leave it: what the next event of the row takes as
// `previous` and fills unchanged TOAST columns from. Three kinds of rows are held:
// - pinned: written by a batch still in flight, until that batch is durable (MongoDB may not hold it yet);
// - retained: needed by the run of messages being turned into events, until the run ends (so that nothing
//   the run brings in pushes them out before their turn);
// - recent: the most recently used others, at most `capacity` rows weighing at most `maxBytes` (a few rows
//   of megabytes weigh as much as thousands of ordinary ones). A row that is none of these is read from MongoDB.
// Pinned rows are bounded by the batches in flight, retained ones by the run the caller builds at once
// (`retainedBytes` tells it what they weigh).
// Each state carries the id of the event that left it, so that a replayed event the state already holds
// (one at or below that id) is told apart from the next change.

import type { Entity, EventRow } from './events.ts'
import type { LifeCycle } from './life-cycle.ts'

export type RowStates = ReturnType<typeof createRowStates>
export type RowRef = { entity: Entity; id: string }
/** A row as its last event left it: its data (null: deleted), a task's life cycle (null: unknown), and that event's id. */
export type RowState = { row: EventRow | null; lifeCycle: LifeCycle | null; lastEventId: string }
/** A row the connector has no state of. */
export const NEVER_SEEN: RowState = Object.freeze({ row: null, lifeCycle: null, lastEventId: '' })

// What a value costs beside its text: a field's slot, a number, a small object's header (a round figure).
const VALUE_OVERHEAD_BYTES = 16

/** What a row weighs in memory, about: its text, and a round figure for each value besides. */
export function rowBytes(row: EventRow | null): number {
  return row ? valueBytes(row) : VALUE_OVERHEAD_BYTES
}

function valueBytes(value: unknown): number {
  if (typeof value === 'string') return value.length + VALUE_OVERHEAD_BYTES
  if (typeof value !== 'object' || value === null) return VALUE_OVERHEAD_BYTES
  let bytes = VALUE_OVERHEAD_BYTES
  for (const key in value) bytes += key.length + valueBytes((value as Record<string, unknown>)[key])
  return bytes
}

type Held = { state: RowState; bytes: number }

export function createRowStates(capacity: number, maxBytes = Infinity) {
  const recent = new Map<string, Held>()
  let recentBytes = 0
  const retained = new Map<string, Held>()
  let retainedBytes = 0
  /** Rows written by batches in flight, with the number of the last batch that wrote each. */
  const pinned = new Map<string, { state: RowState; batch: number }>()
  /** Entities truncated by a batch in flight, with its number and the truncate's id: none of their rows is read from MongoDB. */
  const truncatedBy = new Map<Entity, { batch: number; eventId: string }>()
  const keyOf = (entity: Entity, id: string) => `${entity}:${id}`

  function known(key: string): RowState | undefined {
    return pinned.get(key)?.state ?? retained.get(key)?.state ?? recent.get(key)?.state
  }

  function forget(key: string) {
    const entry = recent.get(key)
    if (!entry) return
    recent.delete(key)
    recentBytes -= entry.bytes
  }

  function remember(key: string, state: RowState, bytes = rowBytes(state.row)) {
    forget(key)
    recent.set(key, { state, bytes })
    recentBytes += bytes
    while (recent.size > capacity || (recentBytes > maxBytes && recent.size)) forget(recent.keys().next().value!)
    if (retained.has(key)) retain(key, state, bytes)
  }

  function retain(key: string, state: RowState, bytes = rowBytes(state.row)) {
    retainedBytes += bytes - (retained.get(key)?.bytes ?? 0)
    retained.set(key, { state, bytes })
  }

  return {
    /**
     * Keeps these rows until `endRun`; returns those whose state is not here and must be read from MongoDB
     * (and then given to `load`).
     */
    retain(rows: Iterable<RowRef>): RowRef[] {
      const missing: RowRef[] = []
      for (const ref of rows) {
        const key = keyOf(ref.entity, ref.id)
        if (retained.has(key)) continue
        const truncate = truncatedBy.get(ref.entity)
        const state = known(key) ?? (truncate && { ...NEVER_SEEN, lastEventId: truncate.eventId })
        if (state) retain(key, state)
        else missing.push(ref)
      }
      return missing
    },

    /** Keeps a row the run inserts until `endRun`, from before its insert (when it has no state) on. */
    retainNew(ref: RowRef) {
      const key = keyOf(ref.entity, ref.id)
      if (!retained.has(key)) retain(key, NEVER_SEEN)
    },

    endRun() {
      retained.clear()
      retainedBytes = 0
    },

    /** What the rows retained for the run weigh (see `rowBytes`). */
    get retainedBytes() {
      return retainedBytes
    },

    /** Forgets what is not pinned: another process may have changed those rows in MongoDB since. */
    forgetRecent() {
      recent.clear()
      recentBytes = 0
    },

    /** The row's state (NEVER_SEEN when none is held). */
    get(entity: Entity, id: string): RowState {
      return known(keyOf(entity, id)) ?? NEVER_SEEN
    },

    /** State read from MongoDB (NEVER_SEEN: not there). */
    load(entity: Entity, id: string, state: RowState) {
      const key = keyOf(entity, id)
      const bytes = rowBytes(state.row)
      retain(key, state, bytes)
      remember(key, state, bytes)
    },

    /** State left by an event of batch `batch`: pinned until `release(batch, …)`. */
    set(entity: Entity, id: string, state: RowState, batch: number) {
      const key = keyOf(entity, id)
      pinned.set(key, { state, batch })
      remember(key, state)
    },

    /** Batch `batch` is durable: the rows it wrote last no longer need pinning. */
    release(batch: number, rows: Iterable<RowRef>) {
      for (const { entity, id } of rows) {
        const key = keyOf(entity, id)
        if (pinned.get(key)?.batch === batch) pinned.delete(key)
      }
      for (const [entity, truncating] of truncatedBy) if (truncating.batch === batch) truncatedBy.delete(entity)
    },

    /** A truncate, event `eventId` of batch `batch`: every row of the entity is gone (a tombstone keeps its life cycle). */
    truncate(entity: Entity, batch: number, eventId: string) {
      const prefix = entity + ':'
      const gone = (state: RowState): RowState => ({ ...state, row: null, lastEventId: eventId })
      for (const [key, held] of retained) if (key.startsWith(prefix)) retain(key, gone(held.state))
      for (const [key, held] of [...recent]) if (key.startsWith(prefix)) remember(key, gone(held.state))
      for (const [key, entry] of pinned) if (key.startsWith(prefix)) entry.state = gone(entry.state)
      truncatedBy.set(entity, { batch, eventId })
    },

    get size() {
      return { recent: recent.size, recentBytes, retained: retained.size, pinned: pinned.size }
    },
  }
}
