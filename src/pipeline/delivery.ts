// Delivery: each batch of events written to MongoDB and published to Pub/Sub, each retried until it
// succeeds. Guarantees:
// - each sink takes the batches one after the other, in the order given (publishing in order keeps each
//   ordering key in order), while the two sinks, and the caller's next batch, overlap;
// - MongoDB never holds a row ahead of its history (see `writeBatch`): a batch's rows are written once its
//   own history and every earlier batch's is stored, and after the earlier batch's rows; its history goes
//   as soon as the earlier batch's is stored, while that batch's rows are still being written;
// - a failed attempt is made again after a backoff; one that neither answers nor fails counts as failed at
//   its deadline; once the stop signal fired no failed attempt is made again (StopRequested);
// - a sink is named failing from its first failed attempt until that operation succeeds.

import type { TaskEvent } from '../events/events.ts'
import { type Logger, errorLine } from '../log.ts'
import { StopRequested, backoffDelay, sleep, withDeadline } from '../retry.ts'
import type { MongoSink } from '../sinks/mongo.ts'
import type { Publisher } from '../sinks/pubsub.ts'

export type SinkName = 'mongo' | 'pubsub'

export type RetryDelays = { initialDelayMs: number; maxDelayMs: number; attemptDeadlineMs: number }

export type DeliveryOptions = {
  mongo: Pick<MongoSink, 'writeHistory' | 'writeState'>
  publisher: Pick<Publisher, 'publish'>
  log: Logger
  /** Backoff between attempts, and the first attempt's deadline (doubled on each retry). */
  retry?: RetryDelays
  /** Told of every sink call a batch makes, with its outcome and duration (metrics). */
  observeSink?(sink: SinkName, outcome: 'ok' | 'failed', seconds: number): void
  signal: AbortSignal
}

export type Delivery = ReturnType<typeof createDelivery>

// A sink call that neither answers nor fails (a connection that died without its socket saying so) would
// hold the stream for good with nothing in /info: each attempt has a deadline, after which it counts as
// failed and is made again. The deadline doubles on each retry (up to MAX_ATTEMPT_DEADLINE_MS), so that an
// operation that is merely long, such as a truncate's tombstones over a large collection, still gets through.
const DEFAULT_RETRY: RetryDelays = { initialDelayMs: 200, maxDelayMs: 10_000, attemptDeadlineMs: 60_000 }
const MAX_ATTEMPT_DEADLINE_MS = 30 * 60_000

export function createDelivery(options: DeliveryOptions) {
  const { mongo, publisher, log, signal } = options
  const retryDelays = options.retry ?? DEFAULT_RETRY
  // Operations of each sink that failed and have not succeeded since: a sink is failing while any is.
  const failing: Record<SinkName, number> = { mongo: 0, pubsub: 0 }
  const stats = { eventsTotal: 0, lastEventId: null as string | null }
  // The last batch's history, rows and publication: the next batch's start on each when the one before ends there.
  let historyStored: Promise<void> = Promise.resolve()
  let stateWritten: Promise<void> = Promise.resolve()
  let published: Promise<void> = Promise.resolve()

  async function retry(sink: SinkName, work: () => Promise<void>) {
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

  return {
    /** Writes and publishes the events, behind every batch given before; resolves once both sinks took them. */
    async deliver(events: TaskEvent[]) {
      const mongoCall = (write: (events: TaskEvent[]) => Promise<void>) => retry('mongo', () => observed('mongo', () => write(events)))
      const history = historyStored.then(() => mongoCall(mongo.writeHistory))
      const state = Promise.all([history, stateWritten]).then(() => mongoCall(mongo.writeState))
      const publication = published.then(() => retry('pubsub', () => observed('pubsub', () => publisher.publish(events))))
      ;[historyStored, stateWritten, published] = [history, state, publication]
      await Promise.all([state, publication])
      stats.eventsTotal += events.length
      if (events.length) stats.lastEventId = events.at(-1)!.id
    },

    /** Runs a sink's operation until it succeeds, counted in `failingSinks`. */
    retry,

    failingSinks: (): SinkName[] => (Object.keys(failing) as SinkName[]).filter((sink) => failing[sink] > 0),

    /** Events delivered, and the id of the last. */
    stats: stats as Readonly<typeof stats>,
  }
}
