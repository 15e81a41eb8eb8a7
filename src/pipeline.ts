// From the change source to the sinks, and back to the slot. Guarantees:
// - events are built in commit order, and each row's `previous` is its state after every earlier event;
// - a batch is written to MongoDB and published to Pub/Sub at the same time, retried until both succeed;
//   each sink takes the batches in order;
// - batches are checkpointed and acknowledged to the source strictly in order, only after both sinks
//   succeeded, so the slot never moves past an event that is not durable and published;
// - at most `maxInFlightBatches` batches are outstanding: a slow or failing sink stops the reading, it never
//   grows a queue (the source stops reading its socket in turn).

import type { DecodedMessage, RowChange } from './decode/types.ts'
import { type Entity, type EventRow, type TaskEvent, type TransactionInfo, TABLE_ENTITY, changeToEvent, eventRowKey, rowKey } from './events/events.ts'
import { type RowRef, createRowStates } from './events/row-states.ts'
import { type Logger, errorLine } from './log.ts'
import { formatLsn, lsnToHex16, type Lsn } from './replication/lsn.ts'
import type { Source } from './replication/source.ts'
import { StopRequested, backoffDelay, sleep, unlessStopped } from './retry.ts'
import type { MongoSink } from './sinks/mongo.ts'
import type { Publisher } from './sinks/pubsub.ts'

export type Batch = {
  events: TaskEvent[]
  /** Sequence number of the last source message the batch covers: acknowledged once the batch is done. */
  lastSeq: number
  /** Commit LSN of the last transaction the batch completes, if it completes one. */
  commitLsn: Lsn | null
}

export type SinkName = 'mongo' | 'pubsub'

export type PipelineOptions = {
  source: Source
  mongo: MongoSink
  publisher: Publisher
  slot: string
  log: Logger
  maxBatchEvents?: number
  maxInFlightBatches?: number
  /**
   * Rows whose state is kept in memory for `previous` and TOAST filling, besides those written by batches
   * in flight; the rest is read from MongoDB.
   */
  rowCacheSize?: number
  /** Backoff between attempts, and the first attempt's deadline (doubled on each retry). */
  retry?: { initialDelayMs: number; maxDelayMs: number; attemptDeadlineMs: number }
  /** Called with each batch once it is durable and published, in order (the live HTTP stream listens here). */
  onDurable?(events: TaskEvent[]): void
  /** Told of every sink call a batch makes, with its outcome and duration (metrics). */
  observeSink?(sink: SinkName, outcome: 'ok' | 'failed', seconds: number): void
  /** Called with every logical message of our prefix (the heartbeat's round trip ends here). */
  onMessage?(prefix: string, content: string): void
  /**
   * The process's stop: reading ends, attempts under way may still finish, but no failed one is made again
   * (what was not delivered is replayed on the next start, the slot not being confirmed past it).
   */
  signal?: AbortSignal
}

const DEFAULT_MAX_BATCH_EVENTS = 1_000
// Batches outstanding. Memory is bounded by what the source may hold (4,000 changes or 16 MB), not by this;
// room for several lets small transactions be published while MongoDB still writes earlier ones.
const DEFAULT_MAX_IN_FLIGHT = 16
// Rows whose last state stays in memory: a few KB each, so about 20 MB at most; older rows are read back.
const DEFAULT_ROW_CACHE = 10_000
// A sink call that neither answers nor fails (a connection that died without its socket saying so) would
// hold the stream for good with nothing in /info: each attempt has a deadline, after which it counts as
// failed and is made again. The deadline doubles on each retry (up to MAX_ATTEMPT_DEADLINE_MS), so that an
// operation that is merely long, such as a truncate's tombstones over a large collection, still gets through.
const DEFAULT_RETRY = { initialDelayMs: 200, maxDelayMs: 10_000, attemptDeadlineMs: 60_000 }
const MAX_ATTEMPT_DEADLINE_MS = 30 * 60_000

export type Pipeline = ReturnType<typeof createPipeline>

const NO_MESSAGE = -1
const emptyBatch = (): Batch => ({ events: [], lastSeq: NO_MESSAGE, commitLsn: null })

export function createPipeline(options: PipelineOptions) {
  const { source, mongo, publisher, log } = options
  const maxBatchEvents = options.maxBatchEvents ?? DEFAULT_MAX_BATCH_EVENTS
  const maxInFlight = options.maxInFlightBatches ?? DEFAULT_MAX_IN_FLIGHT
  const retryDelays = options.retry ?? DEFAULT_RETRY
  const rows = createRowStates(options.rowCacheSize ?? DEFAULT_ROW_CACHE)
  const signal = options.signal ?? new AbortController().signal
  // Number of the batch being built: the rows it writes stay pinned in `rows` until it is durable.
  let batchNumber = 0

  // Transaction being read, and the ordinal of its next change.
  let transaction: TransactionInfo | null = null
  let ordinal = 0
  // Events with an id at or below this were stored before a restart: they are republished as stored.
  let replayThrough = ''
  // The source's stream generation the state above was read for (see `resync`).
  let syncedGeneration = -1
  let tail: Promise<void> = Promise.resolve()
  let inFlight = 0
  let slotFreed: (() => void) | null = null
  // Operations of each sink that failed and have not succeeded since: a sink is failing while any is.
  const failing: Record<SinkName, number> = { mongo: 0, pubsub: 0 }
  const stats = { eventsTotal: 0, lastEventId: null as string | null }

  async function withRetry(sink: SinkName, work: () => Promise<void>) {
    for (let attempt = 1; ; attempt++) {
      try {
        await withDeadline(work(), Math.min(MAX_ATTEMPT_DEADLINE_MS, retryDelays.attemptDeadlineMs * 2 ** Math.min(attempt - 1, 20)))
        if (attempt > 1 && --failing[sink] === 0) log.info(`${sink} is back; resuming`)
        return
      } catch (error) {
        if (attempt === 1) failing[sink]++
        if (signal.aborted) throw new StopRequested(`${sink} failed while stopping (${errorLine(error)})`)
        const delay = backoffDelay(attempt, retryDelays.initialDelayMs, retryDelays.maxDelayMs)
        log.warn(`${sink} failed (${errorLine(error)}); retry ${attempt} in ${Math.round(delay)} ms, stream held`)
        await sleep(delay, signal)
        if (signal.aborted) throw new StopRequested(`${sink} failed while stopping (${errorLine(error)})`)
      }
    }
  }

  /**
   * Writes events to MongoDB and publishes them, each retried until it succeeds. Each sink takes batches
   * one after the other (publishing in order keeps each ordering key in order; MongoDB never holds a row
   * ahead of its history, see `writeBatch`), while the two sinks, and the next batch's preparation, overlap.
   */
  let written: Promise<void> = Promise.resolve()
  let published: Promise<void> = Promise.resolve()
  async function deliver(events: TaskEvent[]) {
    const [earlierWrite, earlierPublish] = [written, published]
    written = earlierWrite.then(() => withRetry('mongo', () => observed('mongo', () => mongo.writeBatch(events))))
    published = earlierPublish.then(() => withRetry('pubsub', () => observed('pubsub', () => publisher.publish(events))))
    await Promise.all([written, published])
    stats.eventsTotal += events.length
    if (events.length) stats.lastEventId = events.at(-1)!.id
  }

  async function observed(sink: SinkName, call: () => Promise<void>) {
    if (!options.observeSink) return call()
    const started = performance.now()
    try {
      await call()
      options.observeSink(sink, 'ok', (performance.now() - started) / 1000)
    } catch (error) {
      options.observeSink(sink, 'failed', (performance.now() - started) / 1000)
      throw error
    }
  }

  /** Starts a batch's writes now; its checkpoint and acknowledgement wait for every earlier batch. */
  function dispatch(batch: Batch) {
    const number = batchNumber++
    inFlight++
    const delivered = deliver(batch.events)
    const previous = tail
    tail = (async () => {
      await Promise.all([delivered, previous])
      if (batch.commitLsn !== null) {
        const lsn = formatLsn(batch.commitLsn)
        await withRetry('mongo', () => mongo.writeCheckpoint({ slot: options.slot, lsn }))
      }
      source.acknowledge(batch.lastSeq)
      rows.release(number, rowsOf(batch.events))
      inFlight--
      slotFreed?.()
      options.onDurable?.(batch.events)
    })()
    // Observed by the next batch or by run(); until then a stop's give-up is not an unhandled rejection.
    tail.catch(() => {})
  }

  async function waitForSlot() {
    while (inFlight >= maxInFlight) await unlessStopped(new Promise<void>((resolve) => (slotFreed = resolve)), signal, 'stopping with every batch slot taken')
    slotFreed = null
  }

  /**
   * Holds the state of every row these messages update or delete until the run is turned into events,
   * reading from MongoDB those that are not in memory.
   */
  async function retainKnownRows(messages: DecodedMessage[]) {
    const needed: RowRef[] = []
    // A row inserted earlier in the run needs nothing from before it.
    const inserted = new Set<string>()
    for (const message of messages) {
      if (message.kind !== 'insert' && message.kind !== 'update' && message.kind !== 'delete') continue
      const key = rowKey(message)!
      const name = `${key.entity}:${key.id}`
      if (message.kind === 'insert') inserted.add(name)
      else if (!inserted.has(name)) needed.push(key)
    }
    const missing = rows.retain(needed)
    await Promise.all(
      (['task', 'workspace'] as const).map(async (entity) => {
        const ids = [...new Set(missing.filter((ref) => ref.entity === entity).map((ref) => ref.id))]
        if (!ids.length) return
        let found = new Map<string, EventRow | null>()
        await withRetry('mongo', async () => void (found = await mongo.knownRows(entity, ids)))
        for (const id of ids) rows.load(entity, id, found.get(id) ?? null)
      }),
    )
  }

  function eventFor(change: RowChange, stored: Map<string, TaskEvent>): TaskEvent {
    const key = rowKey(change)
    const fresh = changeToEvent(change, transaction!, ordinal++, key ? rows.get(key.entity, key.id) : null)
    const event = stored.get(fresh.id) ?? fresh
    if (key) rows.set(key.entity, key.id, event.data, batchNumber)
    else if (change.kind === 'truncate') rows.truncate(TABLE_ENTITY[change.table]!, batchNumber)
    return event
  }

  /**
   * At each new stream (a start, a reconnect, a takeover from another process), what MongoDB holds is read
   * again: the highest stored event (what a replay republishes as stored), and every row not pinned by our
   * own batches in flight, since another process may have streamed from the slot in between.
   */
  async function resync() {
    syncedGeneration = source.generation
    rows.forgetRecent()
    await withRetry('mongo', async () => void (replayThrough = (await mongo.highestEventId()) ?? ''))
  }

  /** Turns a run of messages into batches and dispatches them. */
  async function consume(firstSeq: number, messages: DecodedMessage[]) {
    if (source.generation !== syncedGeneration) await resync()
    await retainKnownRows(messages)
    let stored = new Map<string, TaskEvent>()
    if (replayThrough) {
      const ids = replayCandidates(messages)
      if (ids.length) await withRetry('mongo', async () => void (stored = await mongo.storedEvents(ids)))
      else if (messages.some((message) => message.kind === 'begin' && lsnToHex16(message.commitLsn) > replayThrough)) replayThrough = ''
    }
    let batch = emptyBatch()
    const send = async () => {
      await waitForSlot()
      dispatch(batch)
      batch = emptyBatch()
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
          batch.events.push(eventFor(message, stored))
      }
      batch.lastSeq = firstSeq + index
      if (batch.events.length >= maxBatchEvents) await send()
    }
    if (batch.lastSeq !== NO_MESSAGE) await send()
    rows.endRun()
  }

  /** Ids the messages will produce that may already be stored (at or below what was stored before a restart). */
  function replayCandidates(messages: DecodedMessage[]): string[] {
    const ids: string[] = []
    let commit = transaction ? lsnToHex16(transaction.commitLsn) : ''
    let next = ordinal
    for (const message of messages) {
      if (message.kind === 'begin') {
        commit = lsnToHex16(message.commitLsn)
        next = 0
      } else if (message.kind !== 'commit' && message.kind !== 'message') {
        const id = `${commit}-${(next++).toString(16).toUpperCase().padStart(8, '0')}`
        if (id <= replayThrough) ids.push(id)
      }
    }
    return ids
  }

  return {
    /** Reads and dispatches until stopped; rejects when the source fails for good. */
    async run() {
      try {
        while (!signal.aborted) {
          const { firstSeq, messages } = await source.read()
          if (!messages.length) break
          await consume(firstSeq, messages)
        }
        await tail
      } catch (error) {
        if (!(error instanceof StopRequested)) throw error
        log.warn(`${error.message}: stopping without the batches in flight (${inFlight}); the next start replays them`)
      }
    },

    /** Delivers the initial load's events, a batch at a time, and tells the live stream as a streamed batch does. */
    async deliverLoaded(events: TaskEvent[]) {
      await deliver(events)
      options.onDurable?.(events)
    },

    /** Runs a MongoDB operation until it succeeds, counted in `failingSinks` as the pipeline's own. */
    retryMongo: (work: () => Promise<void>) => withRetry('mongo', work),

    /** Waits for the batches in flight to finish or be given up (once the signal fired); never rejects. */
    async stop() {
      await tail.catch(() => {})
    },

    get state() {
      return { failingSinks: (Object.keys(failing) as SinkName[]).filter((sink) => failing[sink] > 0), inFlightBatches: inFlight, ...stats }
    },
  }
}

function* rowsOf(events: TaskEvent[]) {
  for (const event of events) {
    const key = eventRowKey(event)
    if (key) yield key
  }
}

/** The work's outcome, or a failure once `ms` have passed without one (the work itself goes on). */
export async function withDeadline(work: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${Math.round(ms / 1000)} s`)), ms)
  })
  try {
    await Promise.race([work, deadline])
  } finally {
    clearTimeout(timer)
  }
}
