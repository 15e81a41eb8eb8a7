// From the change source to the sinks, and back to the slot: wires event building (pipeline/build.ts),
// delivery (pipeline/delivery.ts) and commit (pipeline/commit.ts). Guarantees:
// - events are built in commit order, and each row's `previous` is its state after every earlier event;
// - a batch is written to MongoDB and published to Pub/Sub at the same time, retried until both succeed;
//   each sink takes the batches in order;
// - batches are checkpointed and acknowledged to the source strictly in order, only after both sinks
//   succeeded, so the slot never moves past an event that is not durable and published;
// - at most `maxInFlightBatches` batches, weighing `maxInFlightBytes` as built, are outstanding: a slow or
//   failing sink stops the reading, it never grows a queue (the source stops reading its socket in turn);
// - an event too large for a sink is written to it with its largest values left out (`omitted`), logged
//   (one line an event) and counted by sink, never retried for ever; the live stream hears of MongoDB's copies.

import type { DecodedMessage } from './decode/types.ts'
import type { TaskEvent } from './events/events.ts'
import { omittedLine } from './events/omit.ts'
import type { Logger } from './log.ts'
import { createEventBuilder } from './pipeline/build.ts'
import { createCommit } from './pipeline/commit.ts'
import { type RetryDelays, type SinkName, createDelivery } from './pipeline/delivery.ts'
import { LIMITS, createEncoder, encodeAll } from './pipeline/encode.ts'
import { formatLsn } from './replication/lsn.ts'
import type { Source } from './replication/source.ts'
import { StopRequested } from './retry.ts'
import type { MongoSink } from './sinks/mongo.ts'
import type { Publisher } from './sinks/pubsub.ts'

export type PipelineOptions = {
  source: Source
  mongo: MongoSink
  publisher: Publisher
  slot: string
  log: Logger
  maxBatchEvents?: number
  /** A batch is cut once its events weigh this (their JSON). */
  maxBatchBytes?: number
  maxInFlightBatches?: number
  /** What the batches outstanding may weigh together (one batch alone may weigh more). */
  maxInFlightBytes?: number
  /**
   * Rows whose state is kept in memory for `previous` and TOAST filling, besides those written by batches
   * in flight, and what they may weigh; the rest is read from MongoDB.
   */
  rowCacheSize?: number
  rowCacheBytes?: number
  /** What the rows a part of a run needs may weigh, held at once (see pipeline/build.ts). */
  maxRunRowBytes?: number
  /** Backoff between attempts, and the first attempt's deadline (doubled on each retry). */
  retry?: RetryDelays
  /** Called with each batch once it is durable and published, in order (the live HTTP stream listens here). */
  onDurable?(events: TaskEvent[]): void
  /** Told of every sink call a batch makes, with its outcome and duration (metrics). */
  observeSink?(sink: SinkName, outcome: 'ok' | 'failed', seconds: number): void
  /** Told of every event too large for a sink, once (metrics). */
  observeOmitted?(sink: SinkName): void
  /** Called with every logical message of our prefix (the heartbeat's round trip ends here). */
  onMessage?(prefix: string, content: string): void
  /**
   * The process's stop: reading ends, attempts under way may still finish, but no failed one is made again
   * (what was not delivered is replayed on the next start, the slot not being confirmed past it).
   */
  signal?: AbortSignal
}

// Memory is bounded by what events and rows weigh as built, not by how many there are nor by their bytes of
// WAL (an update that leaves a 1 MB value alone is some 300 bytes of WAL, and its event carries the value
// twice). Each bound below is in bytes of the events' JSON or of the rows' text (row-states.ts's `rowBytes`):
// - a batch: 1,000 events, or 2 MiB (1,000 ordinary events weigh under 1 MB, so the count cuts them first);
const DEFAULT_MAX_BATCH_EVENTS = 1_000
const DEFAULT_MAX_BATCH_BYTES = 2 * 1024 * 1024
// - batches outstanding: 4, or 8 MiB. Enough for MongoDB's overlap (one batch's rows, the next one's history,
//   a checkpoint) with one more being built. Few, because what waits behind them is what the next batch
//   gathers: under a steady stream, batches in flight times the time each takes is the delay (at half of
//   FerretDB's ceiling, 16 small batches queued gave a p99 from commit to publish of 1.6 s). Each event weighs
//   about three times its JSON while it is written (its object, its message, its document), so the bytes are
//   some 24 MB at most;
const DEFAULT_MAX_IN_FLIGHT = 4
const DEFAULT_MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024
// - rows whose last state stays in memory, besides those of batches in flight: 10,000 rows of a few KB, or
//   8 MiB (8 rows of 1 MB; 16 MiB left a clean-clone run of the large-rows test 8 MB under its 250 MB bound);
//   older rows are read back from MongoDB;
const DEFAULT_ROW_CACHE = 10_000
const DEFAULT_ROW_CACHE_BYTES = 8 * 1024 * 1024
// - the rows a run of messages needs, held while its events are built: 8 MiB, a part of the run at a time.
const DEFAULT_MAX_RUN_ROW_BYTES = 8 * 1024 * 1024

export type Pipeline = ReturnType<typeof createPipeline>

export function createPipeline(options: PipelineOptions) {
  const { source, mongo, log } = options
  const signal = options.signal ?? new AbortController().signal
  const delivery = createDelivery({ mongo, publisher: options.publisher, log, retry: options.retry, observeSink: options.observeSink, signal })
  const retryMongo = (work: () => Promise<void>) => delivery.retry('mongo', work)
  const encode = createEncoder((copies) => {
    const told = (Object.keys(copies) as SinkName[]).map((sink) => ({ sink, limit: LIMITS[sink], copy: copies[sink]! }))
    log.warn(omittedLine(told[0]!.copy.id, told), { eventId: told[0]!.copy.id })
    for (const { sink } of told) options.observeOmitted?.(sink)
  })
  const builder = createEventBuilder({
    mongo,
    retryMongo,
    maxBatchEvents: options.maxBatchEvents ?? DEFAULT_MAX_BATCH_EVENTS,
    maxBatchBytes: options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES,
    maxRunRowBytes: options.maxRunRowBytes ?? DEFAULT_MAX_RUN_ROW_BYTES,
    rowCacheSize: options.rowCacheSize ?? DEFAULT_ROW_CACHE,
    rowCacheBytes: options.rowCacheBytes ?? DEFAULT_ROW_CACHE_BYTES,
    encode,
    onMessage: options.onMessage,
    landed: () => commit.committed(),
  })
  const commit = createCommit({
    source,
    checkpoint: (lsn) => retryMongo(() => mongo.writeCheckpoint({ slot: options.slot, lsn: formatLsn(lsn) })),
    maxInFlight: options.maxInFlightBatches ?? DEFAULT_MAX_IN_FLIGHT,
    maxInFlightBytes: options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES,
    settled: builder.settled,
    onDurable: options.onDurable,
    signal,
  })
  // The source's stream generation the builder last read MongoDB for (see `resync`).
  let syncedGeneration = -1

  /**
   * A new stream starts again at the confirmed position: it re-sends what this process's batches in flight
   * hold, while the rows those batches wrote are pinned at the state after them. Those batches land first,
   * so that the replay finds their events stored and sends them as they were, never rebuilt from rows ahead.
   */
  async function resync() {
    if (commit.inFlight) {
      log.info(`new replication stream: waiting for the ${commit.inFlight} batches in flight to land before replaying`)
      await commit.committed()
    }
    await builder.resync()
  }

  async function consume(firstSeq: number, messages: DecodedMessage[]) {
    if (source.generation !== syncedGeneration) {
      syncedGeneration = source.generation
      await resync()
    }
    await builder.build(firstSeq, messages, async (batch) => {
      await commit.waitForSlot(batch.bytes)
      commit.add(batch, delivery.deliver(batch))
    })
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
        await commit.committed()
      } catch (error) {
        if (!(error instanceof StopRequested)) throw error
        log.warn(`${error.message}: stopping without the batches in flight (${commit.inFlight}); the next start replays them`)
      }
    },

    /** Delivers the initial load's events, a batch at a time, and tells the live stream as a streamed batch does. */
    async deliverLoaded(events: TaskEvent[]) {
      const batch = encodeAll(encode, events)
      await delivery.deliver(batch)
      options.onDurable?.(batch.stored)
    },

    /** Runs a MongoDB operation until it succeeds, counted in `failingSinks` as the pipeline's own. */
    retryMongo,

    /** Waits for the batches in flight to finish or be given up (once the signal fired); never rejects. */
    async stop() {
      await commit.committed().catch(() => {})
    },

    get state() {
      return { failingSinks: delivery.failingSinks(), inFlightBatches: commit.inFlight, ...delivery.stats }
    },
  }
}
