// Event building: runs of decoded messages into batches of events, in commit order. Owns the transaction
// framing (begin and commit into event ids and a batch's commit LSN), the row states that give each event
// its `previous` and fill its unchanged TOAST values, and the replay index. Guarantees:
// - each row's `previous` is its state after every earlier event: a row written by a batch stays pinned
//   until that batch is `settled`, and MongoDB is read only for rows held nowhere here;
// - an event stored before a restart (its id at or below the highest stored at the last `resync`) is sent
//   again as it was stored, never rebuilt;
// - a batch holds at most `maxBatchEvents` events (one more when a key change's two events meet the limit:
//   they travel together), and its `lastSeq` covers every message it was built from.

import type { DecodedMessage, RowChange } from '../decode/types.ts'
import { type EventRow, type TaskEvent, type TransactionInfo, TABLE_ENTITY, changeEvents, changedKey, eventCount, eventRowKey, rowKey } from '../events/events.ts'
import { type RowRef, type RowStates, createRowStates } from '../events/row-states.ts'
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
  // Events with an id at or below this were stored before a restart: they are republished as stored.
  let replayThrough = ''

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
    for (const fresh of changeEvents(change, transaction!, ordinal, rows.get)) {
      ordinal++
      const event = stored.get(fresh.id) ?? fresh
      const key = eventRowKey(event)
      if (key) rows.set(key.entity, key.id, event.data, batchNumber)
      else if (change.kind === 'truncate') rows.truncate(TABLE_ENTITY[change.table]!, batchNumber)
      events.push(event)
    }
  }

  return {
    /**
     * Reads again what MongoDB holds, at each new stream (a start, a reconnect, a takeover from another
     * process): the highest stored event, and every row not pinned by a batch in flight, since another
     * process may have streamed from the slot in between.
     */
    async resync() {
      rows.forgetRecent()
      await retryMongo(async () => void (replayThrough = (await mongo.highestEventId()) ?? ''))
    },

    /** Turns a run of messages (message i has sequence number `firstSeq + i`) into batches, handing each to `send` in order. */
    async build(firstSeq: number, messages: DecodedMessage[], send: (batch: Batch) => Promise<void>) {
      await retainKnownRows(rows, messages, options)
      const stored = await storedEventsOf(messages)
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
            transaction = { commitLsn: message.commitLsn, xid: message.xid, commitTime: message.commitTime }
            ordinal = 0
            break
          case 'commit':
            batch.commitLsn = message.commitLsn
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
      let found = new Map<string, EventRow | null>()
      await retryMongo(async () => void (found = await mongo.knownRows(entity, ids)))
      for (const id of ids) rows.load(entity, id, found.get(id) ?? null)
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
