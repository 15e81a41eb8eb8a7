// Event building: runs of decoded messages into batches of events, in commit order. Owns the transaction
// framing (begin and commit into event ids and a batch's commit LSN), the row states that give each event
// its `previous`, fill its unchanged TOAST values and time a task's life cycle, and the replay index. Guarantees:
// - each row's `previous` and life cycle are its state after every earlier event: a row written by a batch
//   stays pinned until that batch is `settled`, and MongoDB is read only for rows held nowhere here;
// - an event stored before a restart (its id at or below the highest stored at the last `resync`) is sent
//   again as it was stored, never rebuilt; so is one of a transaction re-sent from its begin after a
//   reconnect, once what was built of it has `landed`; one the row's state already holds leaves that state alone;
// - a batch holds at most `maxBatchEvents` events (one more when a key change's two events meet the limit:
//   they travel together), and its `lastSeq` covers every message it was built from.

import type { DecodedMessage, RowChange } from '../decode/types.ts'
import { type TaskEvent, type TransactionInfo, TABLE_ENTITY, changeEvents, changedKey, eventCount, eventRowKey, rowKey } from '../events/events.ts'
import { stepLifeCycle } from '../events/life-cycle.ts'
import { NEVER_SEEN, type RowRef, type RowState, type RowStates, createRowStates } from '../events/row-states.ts'
import { type Lsn, lsnToHex16 } from '../replication/lsn.ts'
import type { MongoSink } from '../sinks/mongo.ts'

export type Batch = {
  /** The batch's place in the stream: the rows it writes stay pinned under it until it is settled. */
  number: number
  events: TaskEvent[]
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
  /** Rows whose state is kept in memory besides those pinned by batches in flight. */
  rowCacheSize: number
  /** Called with every logical message, in stream order. */
  onMessage?(prefix: string, content: string): void
  /** Resolves once every batch handed over so far is durable. */
  landed(): Promise<void>
}

export type EventBuilder = ReturnType<typeof createEventBuilder>

const NO_MESSAGE = -1

export function createEventBuilder(options: EventBuilderOptions) {
  const { mongo, retryMongo, maxBatchEvents } = options
  const rows = createRowStates(options.rowCacheSize)
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

  const emptyBatch = (): Batch => ({ number: batchNumber, events: [], lastSeq: NO_MESSAGE, commitLsn: null })

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
  function addEvents(change: RowChange, stored: Map<string, TaskEvent>, events: TaskEvent[]) {
    for (const fresh of changeEvents(change, transaction!, ordinal, (entity, id) => rows.get(entity, id).row)) {
      ordinal++
      const replayed = stored.get(fresh.id)
      const event = replayed ?? fresh
      const key = eventRowKey(event)
      if (key) advance(key, event, !replayed)
      else if (change.kind === 'truncate') rows.truncate(TABLE_ENTITY[change.table]!, batchNumber, event.id)
      events.push(event)
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
      await retainKnownRows(rows, messages, options)
      let stored = await storedEventsOf(messages)
      let batch = emptyBatch()
      const handOver = async () => {
        const full = batch
        batchNumber++
        batch = emptyBatch()
        await send(full)
      }
      for (let index = 0; index < messages.length; index++) {
        const message = messages[index]!
        switch (message.kind) {
          case 'begin':
            // The open transaction again from its begin: a new stream re-sends one it cut short. What was built
            // of it lands first, then is sent again as stored, never rebuilt from the rows' later states.
            if (open === message.commitLsn) {
              if (batch.events.length) await handOver()
              await options.landed()
              await readReplayPoint()
              stored = await storedEventsOf(messages.slice(index))
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
            addEvents(message, stored, batch.events)
        }
        batch.lastSeq = firstSeq + index
        if (batch.events.length >= maxBatchEvents) await handOver()
      }
      if (batch.lastSeq !== NO_MESSAGE) await handOver()
      rows.endRun()
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
 * Holds the state of every row these messages update or delete until the run is built, reading from
 * MongoDB those that are not in memory.
 */
async function retainKnownRows(rows: RowStates, messages: DecodedMessage[], { mongo, retryMongo }: Pick<EventBuilderOptions, 'mongo' | 'retryMongo'>) {
  const missing = rows.retain(rowsNeeded(messages))
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

/** The rows whose state from before the run the messages need: those they update or delete, unless inserted earlier in the run. */
function rowsNeeded(messages: DecodedMessage[]): RowRef[] {
  const needed: RowRef[] = []
  const inserted = new Set<string>()
  const need = (key: RowRef) => {
    if (!inserted.has(`${key.entity}:${key.id}`)) needed.push(key)
  }
  for (const message of messages) {
    if (message.kind !== 'insert' && message.kind !== 'update' && message.kind !== 'delete') continue
    const key = rowKey(message)!
    const oldId = message.kind === 'update' ? changedKey(message) : null
    // A key change deletes the old id and creates the new one: only the old id's state is needed.
    if (oldId !== null) need({ entity: key.entity, id: oldId })
    if (message.kind === 'insert' || oldId !== null) inserted.add(`${key.entity}:${key.id}`)
    else need(key)
  }
  return needed
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
