// The latest state of each row as the events built so far leave it: what the next event of the row takes as
// `previous` and fills unchanged TOAST columns from. Three kinds of rows are held:
// - pinned: written by a batch still in flight, until that batch is durable (MongoDB may not hold it yet);
// - retained: needed by the run of messages being turned into events, until the run ends (so that nothing
//   the run brings in pushes them out before their turn);
// - recent: the most recently used `capacity` others. A row that is none of these is read from MongoDB.
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

export function createRowStates(capacity: number) {
  const recent = new Map<string, RowState>()
  const retained = new Map<string, RowState>()
  /** Rows written by batches in flight, with the number of the last batch that wrote each. */
  const pinned = new Map<string, { state: RowState; batch: number }>()
  /** Entities truncated by a batch in flight, with its number and the truncate's id: none of their rows is read from MongoDB. */
  const truncatedBy = new Map<Entity, { batch: number; eventId: string }>()
  const keyOf = (entity: Entity, id: string) => `${entity}:${id}`

  function known(key: string): RowState | undefined {
    return pinned.get(key)?.state ?? retained.get(key) ?? recent.get(key)
  }

  function remember(key: string, row: RowState) {
    recent.delete(key)
    recent.set(key, row)
    if (recent.size > capacity) recent.delete(recent.keys().next().value!)
    if (retained.has(key)) retained.set(key, row)
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
        if (state) retained.set(key, state)
        else missing.push(ref)
      }
      return missing
    },

    endRun() {
      retained.clear()
    },

    /** Forgets what is not pinned: another process may have changed those rows in MongoDB since. */
    forgetRecent() {
      recent.clear()
    },

    /** The row's state (NEVER_SEEN when none is held). */
    get(entity: Entity, id: string): RowState {
      return known(keyOf(entity, id)) ?? NEVER_SEEN
    },

    /** State read from MongoDB (NEVER_SEEN: not there). */
    load(entity: Entity, id: string, state: RowState) {
      const key = keyOf(entity, id)
      retained.set(key, state)
      remember(key, state)
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
      for (const states of [recent, retained]) for (const [key, state] of states) if (key.startsWith(prefix)) states.set(key, gone(state))
      for (const [key, entry] of pinned) if (key.startsWith(prefix)) entry.state = gone(entry.state)
      truncatedBy.set(entity, { batch, eventId })
    },

    get size() {
      return { recent: recent.size, retained: retained.size, pinned: pinned.size }
    },
  }
}
