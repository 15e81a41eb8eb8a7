// The latest state of each row as the events built so far leave it: what the next event of the row takes as
// `previous` and fills unchanged TOAST columns from. Three kinds of rows are held:
// - pinned: written by a batch still in flight, until that batch is durable (MongoDB may not hold it yet);
// - retained: needed by the run of messages being turned into events, until the run ends (so that nothing
//   the run brings in pushes them out before their turn);
// - recent: the most recently used `capacity` others. A row that is none of these is read from MongoDB.

import type { Entity, EventRow } from './events.ts'

export type RowStates = ReturnType<typeof createRowStates>
export type RowRef = { entity: Entity; id: string }

export function createRowStates(capacity: number) {
  const recent = new Map<string, EventRow | null>()
  const retained = new Map<string, EventRow | null>()
  /** Rows written by batches in flight, with the number of the last batch that wrote each. */
  const pinned = new Map<string, { row: EventRow | null; batch: number }>()
  /** Entities truncated by a batch in flight, with its number: none of their rows is read from MongoDB. */
  const truncatedBy = new Map<Entity, number>()
  const keyOf = (entity: Entity, id: string) => `${entity}:${id}`

  function known(key: string): { row: EventRow | null } | null {
    const inFlight = pinned.get(key)
    if (inFlight) return inFlight
    if (retained.has(key)) return { row: retained.get(key)! }
    if (recent.has(key)) return { row: recent.get(key)! }
    return null
  }

  function remember(key: string, row: EventRow | null) {
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
        const state = known(key) ?? (truncatedBy.has(ref.entity) ? { row: null } : null)
        if (state) retained.set(key, state.row)
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

    /** The row's state; null for a deleted row, or one never seen. */
    get(entity: Entity, id: string): EventRow | null {
      return known(keyOf(entity, id))?.row ?? null
    },

    /** State read from MongoDB (null: not there, or a tombstone). */
    load(entity: Entity, id: string, row: EventRow | null) {
      const key = keyOf(entity, id)
      retained.set(key, row)
      remember(key, row)
    },

    /** State left by an event of batch `batch`: pinned until `release(batch, …)`. */
    set(entity: Entity, id: string, row: EventRow | null, batch: number) {
      const key = keyOf(entity, id)
      pinned.set(key, { row, batch })
      remember(key, row)
    },

    /** Batch `batch` is durable: the rows it wrote last no longer need pinning. */
    release(batch: number, rows: Iterable<RowRef>) {
      for (const { entity, id } of rows) {
        const key = keyOf(entity, id)
        if (pinned.get(key)?.batch === batch) pinned.delete(key)
      }
      for (const [entity, truncating] of truncatedBy) if (truncating === batch) truncatedBy.delete(entity)
    },

    /** A truncate in batch `batch`: every row of the entity is gone. */
    truncate(entity: Entity, batch: number) {
      const prefix = entity + ':'
      for (const states of [recent, retained]) for (const key of states.keys()) if (key.startsWith(prefix)) states.set(key, null)
      for (const [key, state] of pinned) if (key.startsWith(prefix)) state.row = null
      truncatedBy.set(entity, batch)
    },

    get size() {
      return { recent: recent.size, retained: retained.size, pinned: pinned.size }
    },
  }
}
