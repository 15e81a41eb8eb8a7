// The latest state of each row as the events built so far leave it: what the next event of the row takes as
// `previous` and fills unchanged TOAST columns from. Three kinds of rows are held:
// - pinned: written by a batch still in flight, until that batch is durable (MongoDB may not hold it yet);
// - retained: needed by the run of messages being turned into events, until the run ends (so that nothing
//   the run brings in pushes them out before their turn);
// - recent: the most recently used others, at most `capacity` rows weighing at most `maxBytes` (a few rows
//   of megabytes weigh as much as thousands of ordinary ones). A row that is none of these is read from MongoDB.
// Pinned rows are bounded by the batches in flight, retained ones by the run the caller builds at once
// (`retainedBytes` tells it what they weigh).

import type { Entity, EventRow } from './events.ts'

export type RowStates = ReturnType<typeof createRowStates>
export type RowRef = { entity: Entity; id: string }

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

export function createRowStates(capacity: number, maxBytes = Infinity) {
  const recent = new Map<string, { row: EventRow | null; bytes: number }>()
  let recentBytes = 0
  const retained = new Map<string, { row: EventRow | null; bytes: number }>()
  let retainedBytes = 0
  /** Rows written by batches in flight, with the number of the last batch that wrote each. */
  const pinned = new Map<string, { row: EventRow | null; batch: number }>()
  /** Entities truncated by a batch in flight, with its number: none of their rows is read from MongoDB. */
  const truncatedBy = new Map<Entity, number>()
  const keyOf = (entity: Entity, id: string) => `${entity}:${id}`

  function known(key: string): { row: EventRow | null } | null {
    const inFlight = pinned.get(key)
    if (inFlight) return inFlight
    return retained.get(key) ?? recent.get(key) ?? null
  }

  function forget(key: string) {
    const entry = recent.get(key)
    if (!entry) return
    recent.delete(key)
    recentBytes -= entry.bytes
  }

  function remember(key: string, row: EventRow | null, bytes = rowBytes(row)) {
    forget(key)
    recent.set(key, { row, bytes })
    recentBytes += bytes
    while (recent.size > capacity || (recentBytes > maxBytes && recent.size)) forget(recent.keys().next().value!)
    if (retained.has(key)) retain(key, row, bytes)
  }

  function retain(key: string, row: EventRow | null, bytes = rowBytes(row)) {
    retainedBytes += bytes - (retained.get(key)?.bytes ?? 0)
    retained.set(key, { row, bytes })
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
        if (state) retain(key, state.row)
        else missing.push(ref)
      }
      return missing
    },

    /** Keeps a row the run inserts until `endRun`, from before its insert (when it has no state) on. */
    retainNew(ref: RowRef) {
      const key = keyOf(ref.entity, ref.id)
      if (!retained.has(key)) retain(key, null)
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

    /** The row's state; null for a deleted row, or one never seen. */
    get(entity: Entity, id: string): EventRow | null {
      return known(keyOf(entity, id))?.row ?? null
    },

    /** State read from MongoDB (null: not there, or a tombstone). */
    load(entity: Entity, id: string, row: EventRow | null) {
      const key = keyOf(entity, id)
      const bytes = rowBytes(row)
      retain(key, row, bytes)
      remember(key, row, bytes)
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
      for (const key of retained.keys()) if (key.startsWith(prefix)) retain(key, null)
      for (const key of [...recent.keys()]) if (key.startsWith(prefix)) remember(key, null)
      for (const [key, state] of pinned) if (key.startsWith(prefix)) state.row = null
      truncatedBy.set(entity, batch)
    },

    get size() {
      return { recent: recent.size, recentBytes, retained: retained.size, pinned: pinned.size }
    },
  }
}
