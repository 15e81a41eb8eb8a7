// Drift between the API's truth and the CDC projection (`tasks`), as contract sections 2 and 6 define it:
// missing (the API has it; the projection lacks it or holds a tombstone), extra (a live projection task the
// API lacks), stale (both have it, `status` or `updatedAt` differ), leaving out the tasks whose projection
// changed during the run (`lastEventId` newer than the checkpoint read at its start: the API's page and the
// projection saw them at different moments), counted apart. Guarantees: neither side is held whole: while
// pages arrive only each task's id and one number (its status and updatedAt) are kept, about 50 bytes a
// task; then one streamed pass over the projection's ids, status, updatedAt and lastEventId settles every
// task; a stop ends that pass at its next batch.

import type { Collection, Document } from 'mongodb'
import { eventIdRange } from '../events/ids.ts'
import { type Lsn, maxLsn, parseLsn } from '../replication/lsn.ts'
import { unlessStopped } from '../retry.ts'

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
  /** Tasks left out of the three: their projection changed during the run. */
  changedDuringRun: number
  examples: { missing: string[]; extra: string[]; stale: string[] }
}

export type ProjectionDocument = { _id: string; status?: unknown; updatedAt?: unknown; deleted?: boolean; lastEventId?: unknown }

export type DriftCheck = ReturnType<typeof createDriftCheck>

export function createDriftCheck() {
  const seen = createIdTable()
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

    /**
     * Settles the drift against the projection's documents, in batches; call once, after the last page.
     * `changedAfter` is the newest event id the checkpoint covered when the run started (null: no
     * checkpoint, nothing is left out).
     */
    async compare(projection: AsyncIterable<ProjectionDocument[]>, changedAfter: string | null): Promise<Drift> {
      const drift: Drift = { missing: 0, extra: 0, stale: 0, changedDuringRun: 0, examples: { missing: [], extra: [], stale: [] } }
      const found = (kind: 'missing' | 'extra' | 'stale', id: string) => {
        drift[kind]++
        if (drift.examples[kind].length < MAX_EXAMPLES) drift.examples[kind].push(id)
      }
      for await (const batch of projection)
        for (const document of batch) {
          const id = String(document._id)
          const api = seen.take(id)
          if (changedAfter !== null && String(document.lastEventId ?? '') > changedAfter) drift.changedDuringRun++
          else if (api === undefined) {
            if (!document.deleted) found('extra', id)
          } else if (document.deleted) found('missing', id)
          else if (api !== fingerprint(document.status, document.updatedAt)) found('stale', id)
        }
      // What is left the projection never had: counted in the table, and only the examples turned into text
      // (all of them would be 100,000 strings of garbage for a projection that is empty).
      drift.missing += seen.untakenCount()
      for (const id of seen.untaken()) {
        if (drift.examples.missing.length === MAX_EXAMPLES) break
        drift.examples.missing.push(id)
      }
      return drift
    },
  }
}

/**
 * The greatest event id the checkpoints cover (`<LSN>-FFFFFFFF`, as the Snapshot route's `lastEventId`), the
 * newest of them when several slots share the database; null when there is none yet.
 */
export async function checkpointEventId(checkpoints: Collection<Document>): Promise<string | null> {
  let newest: Lsn | null = null
  for (const { lsn } of await checkpoints.find({}, { projection: { lsn: 1 } }).toArray())
    if (typeof lsn === 'string') newest = newest === null ? parseLsn(lsn) : maxLsn(newest, parseLsn(lsn))
  return newest === null ? null : eventIdRange(newest).last
}

/** The `tasks` collection as `compare` reads it: batches of the fields it needs, until the stop signal. */
export async function* projectionBatches(tasks: Collection<Document>, signal: AbortSignal): AsyncGenerator<ProjectionDocument[]> {
  const cursor = tasks.find<ProjectionDocument>({}, { projection: { _id: 1, status: 1, updatedAt: 1, deleted: 1, lastEventId: 1 }, batchSize: PROJECTION_BATCH })
  try {
    // A batch at a time, each fetch raced against the stop: a signal during a slow read ends the pass there.
    while (cursor.bufferedCount() > 0 || (await unlessStopped(cursor.hasNext(), signal, 'drift comparison stopped'))) yield cursor.readBufferedDocuments()
  } finally {
    // Not awaited: after a stop the server may not answer the cursor's close either.
    cursor.close().catch(() => {})
  }
}

// Ids seen in the pages and a number for each. UUIDs (the contract's ids) sit in typed arrays, open
// addressing over their four 32-bit words: about 50 bytes a task outside the garbage-collected heap,
// where a Map of strings costs three times that. Any other id falls back to a Map.
const UUID_LENGTH = 36
const DASH = 0x2d
const INITIAL_CAPACITY = 1 << 14
const EMPTY = 0
const PRESENT = 1
const TAKEN = 2

function createIdTable() {
  let capacity = INITIAL_CAPACITY
  let size = 0
  let words = new Uint32Array(capacity * 4)
  let values = new Float64Array(capacity)
  let states = new Uint8Array(capacity)
  const others = new Map<string, number>()
  const key = new Uint32Array(4)

  // By hand, without a regular expression or substrings: it runs for every task of the API and the projection.
  const parse = (id: string): boolean => {
    if (id.length !== UUID_LENGTH) return false
    let word = 0
    let digits = 0
    for (let i = 0; i < UUID_LENGTH; i++) {
      const code = id.charCodeAt(i)
      if (i === 8 || i === 13 || i === 18 || i === 23) {
        if (code !== DASH) return false
        continue
      }
      const value = code >= 48 && code <= 57 ? code - 48 : (code | 32) >= 97 && (code | 32) <= 102 ? (code | 32) - 87 : -1
      if (value < 0) return false
      word = word * 16 + value
      if (++digits % 8 === 0) {
        key[digits / 8 - 1] = word
        word = 0
      }
    }
    return true
  }

  // The slot holding `key`, or the empty slot where it would go.
  const slotOf = (k: Uint32Array, mask: number, at: Uint32Array, used: Uint8Array): number => {
    let hash = Math.imul(k[0]! ^ Math.imul(k[1]!, 0x85ebca6b) ^ Math.imul(k[2]!, 0xc2b2ae35) ^ Math.imul(k[3]!, 0x27d4eb2f), 0x9e3779b1)
    hash ^= hash >>> 15
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      if (used[slot] === EMPTY) return slot
      const w = slot * 4
      if (at[w] === k[0] && at[w + 1] === k[1] && at[w + 2] === k[2] && at[w + 3] === k[3]) return slot
    }
  }

  // Doubling at half full keeps probe runs short.
  const grow = () => {
    const old = { words, values, states }
    capacity *= 2
    words = new Uint32Array(capacity * 4)
    values = new Float64Array(capacity)
    states = new Uint8Array(capacity)
    const moved = new Uint32Array(4)
    for (let slot = 0; slot < old.states.length; slot++) {
      if (old.states[slot] === EMPTY) continue
      moved.set(old.words.subarray(slot * 4, slot * 4 + 4))
      const to = slotOf(moved, capacity - 1, words, states)
      words.set(moved, to * 4)
      values[to] = old.values[slot]!
      states[to] = old.states[slot]!
    }
  }

  const text = (slot: number): string => {
    const hex = (value: number) => value.toString(16).padStart(8, '0')
    const [a, b, c, d] = [hex(words[slot * 4]!), hex(words[slot * 4 + 1]!), hex(words[slot * 4 + 2]!), hex(words[slot * 4 + 3]!)]
    return `${a}-${b.slice(0, 4)}-${b.slice(4)}-${c.slice(0, 4)}-${c.slice(4)}${d}`
  }

  return {
    set(id: string, value: number) {
      if (!parse(id)) return void others.set(id, value)
      if ((size + 1) * 2 > capacity) grow()
      const slot = slotOf(key, capacity - 1, words, states)
      if (states[slot] === EMPTY) size++
      words.set(key, slot * 4)
      values[slot] = value
      states[slot] = PRESENT
    },
    /** The id's value, once: a second take of the same id finds nothing. */
    take(id: string): number | undefined {
      if (!parse(id)) {
        const value = others.get(id)
        others.delete(id)
        return value
      }
      const slot = slotOf(key, capacity - 1, words, states)
      if (states[slot] !== PRESENT) return undefined
      states[slot] = TAKEN
      return values[slot]
    },
    untakenCount(): number {
      let count = others.size
      for (let slot = 0; slot < capacity; slot++) if (states[slot] === PRESENT) count++
      return count
    },
    /** The ids never taken (UUIDs in lower case). */
    *untaken(): Generator<string> {
      for (let slot = 0; slot < capacity; slot++) if (states[slot] === PRESENT) yield text(slot)
      yield* others.keys()
    },
  }
}
