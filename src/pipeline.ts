// From the change source to the sinks, and back to the slot: wires event building (pipeline/build.ts),
// delivery (pipeline/delivery.ts) and commit (pipeline/commit.ts). Guarantees:
// - events are built in commit order, and each row's `previous` is its state after every earlier event;
// - a batch is written to MongoDB and published to Pub/Sub at the same time, retried until both succeed;
//   each sink takes the batches in order;
// - batches are checkpointed and acknowledged to the source strictly in order, only after both sinks
//   succeeded, so the slot never moves past an event that is not durable and published;
// - at most `maxInFlightBatches` batches are outstanding: a slow or failing sink stops the reading, it never
//   grows a queue (the source stops reading its socket in turn).

import type { DecodedMessage } from './decode/types.ts'
import type { TaskEvent } from './events/events.ts'
import type { Logger } from './log.ts'
import { createEventBuilder } from './pipeline/build.ts'
import { createCommit } from './pipeline/commit.ts'
import { type RetryDelays, type SinkName, createDelivery } from './pipeline/delivery.ts'
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
  maxInFlightBatches?: number
  /**
   * Rows whose state is kept in memory for `previous` and TOAST filling, besides those written by batches
   * in flight; the rest is read from MongoDB.
   */
  rowCacheSize?: number
  /** Backoff between attempts, and the first attempt's deadline (doubled on each retry). */
  retry?: RetryDelays
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
// Batches outstanding: enough for MongoDB's overlap (one batch's rows, the next one's history, a checkpoint)
// with one more being built. Few, because what waits behind them is what the next batch gathers: under a
// steady stream, batches in flight times the time each takes is the delay (at half of FerretDB's ceiling,
// 16 small batches queued gave a p99 from commit to publish of 1.6 s). Memory is bounded by what the source
// may hold (4,000 changes or 16 MB), not by this.
const DEFAULT_MAX_IN_FLIGHT = 4
// Rows whose last state stays in memory: a few KB each, so about 20 MB at most; older rows are read back.
const DEFAULT_ROW_CACHE = 10_000

export type Pipeline = ReturnType<typeof createPipeline>

export function createPipeline(options: PipelineOptions) {
  const { source, mongo, log } = options
  const signal = options.signal ?? new AbortController().signal
  const delivery = createDelivery({ mongo, publisher: options.publisher, log, retry: options.retry, observeSink: options.observeSink, signal })
  const retryMongo = (work: () => Promise<void>) => delivery.retry('mongo', work)
  const builder = createEventBuilder({
    mongo,
    retryMongo,
    maxBatchEvents: options.maxBatchEvents ?? DEFAULT_MAX_BATCH_EVENTS,
    rowCacheSize: options.rowCacheSize ?? DEFAULT_ROW_CACHE,
    onMessage: options.onMessage,
  })
  const commit = createCommit({
    source,
    checkpoint: (lsn) => retryMongo(() => mongo.writeCheckpoint({ slot: options.slot, lsn: formatLsn(lsn) })),
    maxInFlight: options.maxInFlightBatches ?? DEFAULT_MAX_IN_FLIGHT,
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
      await commit.waitForSlot()
      commit.add(batch, delivery.deliver(batch.events))
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
      await delivery.deliver(events)
      options.onDurable?.(events)
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
