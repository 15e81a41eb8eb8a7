// Event building: runs of decoded messages into batches of events, in commit order. Owns the transaction
// framing (begin and commit into event ids and a batch's commit LSN), the row states that give each event
// its `previous`, fill its unchanged TOAST values and time a task's life cycle, and the replay index. Guarantees:
// - each row's `previous` and life cycle are its state after every earlier event: a row written by a batch
//   stays pinned until that batch is `settled`, and MongoDB is read only for rows held nowhere here;
// - an event stored before a restart (its id at or below the highest stored at the last `resync`) is sent
//   again as it was stored, never rebuilt; so is one of a transaction re-sent from its begin after a
//   reconnect, once what was built of it has `landed`; one the row's state already holds leaves that state alone;
// - a batch holds at most `maxBatchEvents` events (one more when a key change's two events meet the limit:
//   they travel together) and is cut once its events weigh `maxBatchBytes` (as built: their JSON), and its
//   `lastSeq` covers every message it was built from;
// - the rows a run needs are held (and read from MongoDB) a part of the run at a time, each part's about
//   `maxRunRowBytes`: an update of many large rows holds a few of them at once, not all;
// - each event is encoded for the sinks once, as it is built (pipeline/encode.ts).

import type { DecodedMessage, RowChange } from '../decode/types.ts'
import { type TaskEvent, type TransactionInfo, TABLE_ENTITY, changeEvents, changedKey, eventCount, eventRowKey, rowKey } from '../events/events.ts'
import { stepLifeCycle } from '../events/life-cycle.ts'
import { NEVER_SEEN, type RowRef, type RowState, type RowStates, createRowStates } from '../events/row-states.ts'
import { type Lsn, lsnToHex16 } from '../replication/lsn.ts'
import type { MongoSink } from '../sinks/mongo.ts'
import { type EncodedEvents, noEvents } from './encode.ts'

export type Batch = EncodedEvents & {
  /** The batch's place in the stream: the rows it writes stay pinned under it until it is settled. */
  number: number
  /** Sequence number of the last source message the batch covers: acknowledged once the batch is done. */
  lastSeq: number
  /** Commit LSN of the last transaction the batch completes, if it completes one. */
  commitLsn: Lsn | null
}

export type EventBuilderOptions = {
  mongo: Pick<MongoSink, 'knownRows' | 'storedEvents' | 'highestEventId'>
  /** Runs a MongoDB read until it succeeds. */
  retryMongo(work: () => Promise<void>): Promise<void>
  maxBatchEvents: number
  maxBatchBytes: number
  /** What the rows held for one part of a run may weigh (rows/row-states.ts's `rowBytes`). */
  maxRunRowBytes: number
  /** Rows whose state is kept in memory besides those pinned by batches in flight, and what they may weigh. */
  rowCacheSize: number
  rowCacheBytes: number
  /** Adds a built event to a batch, encoded for the sinks (pipeline/encode.ts). */
  encode(batch: EncodedEvents, event: TaskEvent): void
  /** Called with every logical message, in stream order. */
  onMessage?(prefix: string, content: string): void
  /** Resolves once every batch handed over so far is durable. */
  landed(): Promise<void>
}

export type EventBuilder = ReturnType<typeof createEventBuilder>

/** How far a run's parts reached, the rows the current part inserts, and what a row read from MongoDB weighed. */
type RunPart = { end: number; inserted: Set<string>; averageRowBytes: number }

const NO_MESSAGE = -1
// Ids in a part's first MongoDB lookup of rows, before their weight is known: 8 rows of a megabyte at most.
const FIRST_LOOKUP_IDS = 8
// And at most in any lookup, once rows turn out light: one round trip for a typical run's rows.
const MAX_LOOKUP_IDS = 500

export function createEventBuilder(options: EventBuilderOptions) {
  const { mongo, retryMongo, maxBatchEvents, maxBatchBytes } = options
  const rows = createRowStates(options.rowCacheSize, options.rowCacheBytes)
  // Number of the batch being built.
  let batchNumber = 0
  // Transaction being read, and the ordinal of its next change.
  let transaction: TransactionInfo | null = null
  let ordinal = 0
  // Commit LSN of the transaction begun and not committed yet in the stream.
  let open: Lsn | null = null
  // Events with an id at or below this were stored before a restart: they are republished as stored.
  let replayThrough = ''
  const readReplayPoint = () => retryMongo(async () => void (replayThrough = (await mongo.highestEventId()) ?? ''))

  const emptyBatch = (): Batch => ({ number: batchNumber, ...noEvents(), lastSeq: NO_MESSAGE, commitLsn: null })

  /** The events of the run that were stored before a restart, by id. */
  async function storedEventsOf(messages: DecodedMessage[]): Promise<Map<string, TaskEvent>> {
    let stored = new Map<string, TaskEvent>()
    if (!replayThrough) return stored
    const ids = replayCandidates(messages, transaction ? { commitLsn: transaction.commitLsn, ordinal } : null, replayThrough)
    if (ids.length) await retryMongo(async () => void (stored = await mongo.storedEvents(ids)))
    else if (messages.some((message) => message.kind === 'begin' && lsnToHex16(message.commitLsn) > replayThrough)) replayThrough = ''
    return stored
  }

  /** The change's events (two for a key change), each leaving its row's state for the events after it. */
  function addEvents(change: RowChange, stored: Map<string, TaskEvent>, batch: EncodedEvents) {
    for (const fresh of changeEvents(change, transaction!, ordinal, (entity, id) => rows.get(entity, id).row)) {
      ordinal++
      const replayed = stored.get(fresh.id)
      const event = replayed ?? fresh
      const key = eventRowKey(event)
      if (key) advance(key, event, !replayed)
      else if (change.kind === 'truncate') rows.truncate(TABLE_ENTITY[change.table]!, batchNumber, event.id)
      options.encode(batch, event)
    }
  }

  /**
   * The row's state after `event`, with a task's life cycle timed (`fresh`: the event's transition too). A
   * replayed event that the state already holds (MongoDB's row is ahead of the replay) leaves it as it is:
   * nothing, timing least of all, is computed from a row that is ahead.
   */
  function advance(key: RowRef, event: TaskEvent, fresh: boolean) {
    const state = rows.get(key.entity, key.id)
    if (!fresh && event.id <= state.lastEventId) return
    const lifeCycle = key.entity === 'task' ? stepLifeCycle(event, state, fresh) : null
    rows.set(key.entity, key.id, { row: event.data, lifeCycle, lastEventId: event.id }, batchNumber)
  }

  return {
    /**
     * Reads again what MongoDB holds, at each new stream (a start, a reconnect, a takeover from another
     * process): the highest stored event, and every row not pinned by a batch in flight, since another
     * process may have streamed from the slot in between.
     */
    async resync() {
      rows.forgetRecent()
      await readReplayPoint()
    },

    /** Turns a run of messages (message i has sequence number `firstSeq + i`) into batches, handing each to `send` in order. */
    async build(firstSeq: number, messages: DecodedMessage[], send: (batch: Batch) => Promise<void>) {
      let batch = emptyBatch()
      const handOver = async () => {
        const full = batch
        batchNumber++
        batch = emptyBatch()
        await send(full)
      }
      const part: RunPart = { end: 0, inserted: new Set<string>(), averageRowBytes: 0 }
      for (let start = 0; start < messages.length; start = part.end) {
        await retainPart(rows, messages, part, options)
        let stored = await storedEventsOf(messages.slice(start, part.end))
        for (let index = start; index < part.end; index++) {
          const message = messages[index]!
          switch (message.kind) {
            case 'begin':
              // The open transaction again from its begin: a new stream re-sends one it cut short. What was built
              // of it lands first, then is sent again as stored, never rebuilt from the rows' later states.
              if (open === message.commitLsn) {
                if (batch.events.length) await handOver()
                await options.landed()
                await readReplayPoint()
                stored = await storedEventsOf(messages.slice(index, part.end))
              }
              transaction = { commitLsn: message.commitLsn, xid: message.xid, commitTime: message.commitTime }
              ordinal = 0
              open = message.commitLsn
              break
            case 'commit':
              batch.commitLsn = message.commitLsn
              open = null
              break
            case 'message':
              options.onMessage?.(message.prefix, message.content)
              break
            default:
              addEvents(message, stored, batch)
          }
          batch.lastSeq = firstSeq + index
          if (batch.events.length >= maxBatchEvents || batch.bytes >= maxBatchBytes) await handOver()
        }
        rows.endRun()
      }
      if (batch.lastSeq !== NO_MESSAGE) await handOver()
    },

    /** The batch is durable: the rows it wrote last are read from MongoDB again when pushed out of memory. */
    settled(batch: Batch) {
      rows.release(batch.number, rowsOf(batch.events))
    },
  }
}

function* rowsOf(events: TaskEvent[]) {
  for (const event of events) {
    const key = eventRowKey(event)
    if (key) yield key
  }
}

/**
 * Holds the state of the rows the next part of the run updates or deletes, reading from MongoDB those not in
 * memory, and moves `part.end` past it: the part ends once its rows weigh `maxRunRowBytes` (it has one
 * message at least). A lookup asks for FIRST_LOOKUP_IDS rows until the rows read tell what one weighs, then
 * for as many as the part has room for.
 */
async function retainPart(rows: RowStates, messages: DecodedMessage[], part: RunPart, options: EventBuilderOptions) {
  const start = part.end
  part.inserted.clear()
  while (part.end < messages.length && (part.end === start || rows.retainedBytes < options.maxRunRowBytes)) {
    const room = Math.floor((options.maxRunRowBytes - rows.retainedBytes) / part.averageRowBytes)
    const lookupIds = part.averageRowBytes ? Math.max(1, Math.min(MAX_LOOKUP_IDS, room)) : FIRST_LOOKUP_IDS
    const missing: RowRef[] = []
    for (; part.end < messages.length && missing.length < lookupIds && rows.retainedBytes < options.maxRunRowBytes; part.end++) {
      const needed = rowNeeded(messages[part.end]!, part.inserted, rows)
      if (needed) missing.push(...rows.retain([needed]))
    }
    const before = rows.retainedBytes
    await loadRows(rows, missing, options)
    if (missing.length) part.averageRowBytes = (rows.retainedBytes - before) / missing.length || part.averageRowBytes
  }
}

async function loadRows(rows: RowStates, missing: RowRef[], { mongo, retryMongo }: Pick<EventBuilderOptions, 'mongo' | 'retryMongo'>) {
  await Promise.all(
    (['task', 'workspace'] as const).map(async (entity) => {
      const ids = [...new Set(missing.filter((ref) => ref.entity === entity).map((ref) => ref.id))]
      if (!ids.length) return
      let found = new Map<string, RowState>()
      await retryMongo(async () => void (found = await mongo.knownRows(entity, ids)))
      for (const id of ids) rows.load(entity, id, found.get(id) ?? NEVER_SEEN)
    }),
  )
}

/**
 * The row whose state from before the part the message needs: one it updates or deletes, unless the part
 * inserted it before; for a key change, the old id's (the new id is created). A row the part inserts is
 * retained from then on (nothing before it to read), so that its later changes in the part find it however
 * many rows come between.
 */
function rowNeeded(message: DecodedMessage, inserted: Set<string>, rows: RowStates): RowRef | null {
  if (message.kind !== 'insert' && message.kind !== 'update' && message.kind !== 'delete') return null
  const key = rowKey(message)!
  const oldId = message.kind === 'update' ? changedKey(message) : null
  if (message.kind !== 'insert' && oldId === null) return inserted.has(`${key.entity}:${key.id}`) ? null : key
  inserted.add(`${key.entity}:${key.id}`)
  rows.retainNew(key)
  return oldId !== null && !inserted.has(`${key.entity}:${oldId}`) ? { entity: key.entity, id: oldId } : null
}

/**
 * Ids the messages will produce that may already be stored: those at or below `replayThrough`. `open` is the
 * transaction the messages continue, if they start inside one, and the ordinal of its next change.
 */
export function replayCandidates(messages: DecodedMessage[], open: { commitLsn: Lsn; ordinal: number } | null, replayThrough: string): string[] {
  const ids: string[] = []
  let commit = open ? lsnToHex16(open.commitLsn) : ''
  let next = open?.ordinal ?? 0
  for (const message of messages) {
    if (message.kind === 'begin') {
      commit = lsnToHex16(message.commitLsn)
      next = 0
    } else if (message.kind !== 'commit' && message.kind !== 'message') {
      for (let event = eventCount(message); event > 0; event--) {
        const id = `${commit}-${(next++).toString(16).toUpperCase().padStart(8, '0')}`
        if (id <= replayThrough) ids.push(id)
      }
    }
  }
  return ids
}
