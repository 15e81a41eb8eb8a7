// start-job's publishing: the Pub/Sub sink's `publish`, retried through an outage (contract section 6: a
// Pub/Sub outage of a minute delays a run, it does not fail it). Guarantees: a transient gRPC status is
// retried with capped, jittered backoff for up to RETRY_WINDOW_MS, then the call fails with the last error;
// any other status fails at once; a stop ends the call under way and the wait at once (AbortedError). A
// request retried after a timeout may have landed already: its events are published twice with the same
// ids, which the contract's subscribers drop.

import { backoffDelay, sleep, unlessStopped } from '../retry.ts'
import type { Publisher } from '../sinks/pubsub.ts'
import { AbortedError } from './http.ts'

// Well past the contract's one-minute outage; beyond this the run fails and the next scheduled one tries again.
const RETRY_WINDOW_MS = 10 * 60_000
// The first waits are short (a blip), the longest 30 s: an outage's end is seen within half a minute.
const BACKOFF_INITIAL_MS = 500
const BACKOFF_MAX_MS = 30_000
// The statuses the Pub/Sub client itself retries Publish on (its publisher_client_config.json):
// CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE.
const TRANSIENT_CODES = new Set([1, 2, 4, 8, 10, 13, 14])

export class PublishError extends Error {
  override name = 'PublishError'
}

export type RetryingPublisherOptions = {
  signal: AbortSignal
  onRetry?: (reason: string, delayMs: number) => void
  /** RETRY_WINDOW_MS unless a test needs it shorter. */
  windowMs?: number
}

export function retryingPublisher(publisher: Pick<Publisher, 'publish'>, options: RetryingPublisherOptions): Pick<Publisher, 'publish'> {
  const windowMs = options.windowMs ?? RETRY_WINDOW_MS
  return {
    async publish(events) {
      const started = Date.now()
      for (let attempt = 1; ; attempt++) {
        let error: unknown
        try {
          return await unlessStopped(publisher.publish(events), options.signal)
        } catch (caught) {
          error = caught
        }
        if (options.signal.aborted) throw new AbortedError()
        const { code, message } = error as { code?: unknown; message?: string }
        if (typeof code !== 'number' || !TRANSIENT_CODES.has(code)) throw error
        const delayMs = backoffDelay(attempt, BACKOFF_INITIAL_MS, BACKOFF_MAX_MS)
        const spentMs = Date.now() - started
        if (spentMs + delayMs > windowMs) throw new PublishError(`Pub/Sub publish failed for ${Math.round(spentMs / 1000)} s over ${attempt} attempts: ${message}`)
        options.onRetry?.(`Pub/Sub publish: ${message}`, delayMs)
        await sleep(delayMs, options.signal)
      }
    },
  }
}
