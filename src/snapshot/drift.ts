// Drift between the API's truth and the CDC projection (`tasks`), as contract section 2 defines it:
// missing (the API has it; the projection lacks it or holds a tombstone), extra (a live projection task the
// API lacks), stale (both have it, `status` or `updatedAt` differ). Guarantees: neither side is held whole:
// while pages arrive only each task's id and one number (its status and updatedAt) are kept, about 100
// bytes a task; then one streamed pass over the projection's ids, status and updatedAt settles every task.

import type { Collection, Document } from 'mongodb'

// The contract: at most 100 example ids of each kind.
export const MAX_EXAMPLES = 100
// The projection is read in batches of this many documents (a few hundred kB of ids and dates).
const PROJECTION_BATCH = 2_000
// Statuses are interned to an index below this, packed with updatedAt's milliseconds into one exact number
// (dates up to the year 2248 fit beside 1,024 statuses within 2^53).
const STATUS_SLOTS = 1024

export type Drift = {
  missing: number
  extra: number
  stale: number
  examples: { missing: string[]; extra: string[]; stale: string[] }
}

type ProjectionDocument = { _id: string; status?: unknown; updatedAt?: unknown; deleted?: boolean }

export type DriftCheck = ReturnType<typeof createDriftCheck>

export function createDriftCheck() {
  const seen = new Map<string, number>()
  const statuses = new Map<string, number>()

  const fingerprint = (status: unknown, updatedAt: unknown): number => {
    const name = String(status)
    let index = statuses.get(name)
    if (index === undefined) statuses.set(name, (index = statuses.size % STATUS_SLOTS))
    const ms = updatedAt instanceof Date ? updatedAt.getTime() : Date.parse(String(updatedAt))
    return (Number.isNaN(ms) ? -1 : ms) * STATUS_SLOTS + index
  }

  return {
    /** A task as the API gave it. */
    observe(task: { id: string; status: string; updatedAt: string }) {
      seen.set(task.id, fingerprint(task.status, task.updatedAt))
    },

    /** Settles the drift against the projection; call once, after the last page. */
    async compare(tasks: Collection<Document>): Promise<Drift> {
      const drift: Drift = { missing: 0, extra: 0, stale: 0, examples: { missing: [], extra: [], stale: [] } }
      const found = (kind: 'missing' | 'extra' | 'stale', id: string) => {
        drift[kind]++
        if (drift.examples[kind].length < MAX_EXAMPLES) drift.examples[kind].push(id)
      }
      const cursor = tasks.find<ProjectionDocument>({}, { projection: { _id: 1, status: 1, updatedAt: 1, deleted: 1 }, batchSize: PROJECTION_BATCH })
      for await (const document of cursor) {
        const id = String(document._id)
        const api = seen.get(id)
        if (api === undefined) {
          if (!document.deleted) found('extra', id)
          continue
        }
        seen.delete(id)
        if (document.deleted) found('missing', id)
        else if (api !== fingerprint(document.status, document.updatedAt)) found('stale', id)
      }
      // What is left the projection never had.
      for (const id of seen.keys()) found('missing', id)
      seen.clear()
      return drift
    },
  }
}
