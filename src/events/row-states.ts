// The latest state of each row as the events built so far leave it: what the next event of the row takes as
// `previous` and fills unchanged TOAST columns from. A row whose latest event is still in flight is pinned
// until that event is durable, because MongoDB may not hold it yet; of the others the most recently used
// `capacity` stay in memory, and a row that is not here is read back from MongoDB by the caller.

import type { Entity, EventRow } from './events.ts'

export type RowStates = ReturnType<typeof createRowStates>

export function createRowStates(capacity: number) {
  const recent = new Map<string, EventRow | null>()
  /** Rows written by batches in flight, with the number of the last batch that wrote each. */
  const pinned = new Map<string, { row: EventRow | null; batch: number }>()
  /** Entities truncated by a batch in flight, with its number: none of their rows is read from MongoDB. */
  const truncatedBy = new Map<Entity, number>()
  const keyOf = (entity: Entity, id: string) => `${entity}:${id}`

  function remember(key: string, row: EventRow | null) {
    recent.delete(key)
    recent.set(key, row)
    if (recent.size > capacity) recent.delete(recent.keys().next().value!)
  }

  return {
    has: (entity: Entity, id: string) => truncatedBy.has(entity) || pinned.has(keyOf(entity, id)) || recent.has(keyOf(entity, id)),

    /** The row's state; null for a deleted row or one never seen (`has` tells them apart). */
    get(entity: Entity, id: string): EventRow | null {
      const key = keyOf(entity, id)
      const inFlight = pinned.get(key)
      return inFlight ? inFlight.row : (recent.get(key) ?? null)
    },

    /** State read from MongoDB. */
    load(entity: Entity, id: string, row: EventRow | null) {
      remember(keyOf(entity, id), row)
    },

    /** State left by an event of batch `batch`: pinned until `release(batch, …)`. */
    set(entity: Entity, id: string, row: EventRow | null, batch: number) {
      const key = keyOf(entity, id)
      pinned.set(key, { row, batch })
      remember(key, row)
    },

    /** Batch `batch` is durable: the rows it wrote last no longer need pinning. */
    release(batch: number, rows: Iterable<{ entity: Entity; id: string }>) {
      for (const { entity, id } of rows) {
        const key = keyOf(entity, id)
        if (pinned.get(key)?.batch === batch) pinned.delete(key)
      }
      for (const [entity, truncating] of truncatedBy) if (truncating === batch) truncatedBy.delete(entity)
    },

    /** A truncate in batch `batch`: every row of the entity is gone. */
    truncate(entity: Entity, batch: number) {
      const prefix = entity + ':'
      for (const key of recent.keys()) if (key.startsWith(prefix)) recent.set(key, null)
      for (const [key, state] of pinned) if (key.startsWith(prefix)) state.row = null
      truncatedBy.set(entity, batch)
    },

    get size() {
      return { recent: recent.size, pinned: pinned.size }
    },
  }
}
