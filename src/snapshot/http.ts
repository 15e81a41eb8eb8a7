// HTTP requests of start-job (token endpoint and GraphQL API) with a deadline and retries.
// Guarantees: a network error, a timeout, a 5xx or a 429 is retried with capped, jittered exponential
// backoff (a Retry-After in seconds or as an HTTP date is honoured, up to a cap), at most MAX_ATTEMPTS
// times in all; any other answer is returned to the caller as it came; an abort stops at once.

// One request's deadline: a page of 500 tasks is well under a megabyte, so a minute means the server is stuck.
export const REQUEST_TIMEOUT_MS = 30_000
// Attempts in all, and the backoff's range: with full jitter the waits average 0.25, 0.5, 1, 2, 4 s, so a
// few seconds of trouble (a deploy, a restarted pod) are ridden out, and a real outage fails the run after
// about 8 s of waiting rather than holding it until the next one is due.
const MAX_ATTEMPTS = 6
const BACKOFF_BASE_MS = 500
const BACKOFF_CAP_MS = 8_000
// A server asking for a longer pause than this is down for longer than a run should wait.
const RETRY_AFTER_CAP_MS = 60_000
const TOO_MANY_REQUESTS = 429

export class RequestError extends Error {
  override name = 'RequestError'
}

export class AbortedError extends Error {
  override name = 'AbortedError'
  constructor() {
    super('aborted')
  }
}

export type RetryOptions = {
  /** What the request is, for messages: "token endpoint", "GraphQL tasks of workspace …". */
  what: string
  signal?: AbortSignal
  timeoutMs?: number
  onRetry?: (reason: string, delayMs: number, attempt: number) => void
}

/** Sends the request (`init()` is called anew for each attempt) until an answer that is not worth retrying. */
export async function fetchWithRetry(url: string, init: () => RequestInit, options: RetryOptions): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    if (options.signal?.aborted) throw new AbortedError()
    const deadline = AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS)
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline
    let reason: string
    let delayMs = backoff(attempt)
    try {
      const response = await fetch(url, { ...init(), signal })
      if (!retryable(response.status)) return response
      reason = `HTTP ${response.status}`
      delayMs = retryAfterMs(response.headers.get('retry-after')) ?? delayMs
      await response.body?.cancel()
    } catch (error) {
      if (options.signal?.aborted) throw new AbortedError()
      reason = deadline.aborted ? `no answer within ${options.timeoutMs ?? REQUEST_TIMEOUT_MS} ms` : (error as Error).message
    }
    if (attempt === MAX_ATTEMPTS) throw new RequestError(`${options.what} failed after ${MAX_ATTEMPTS} attempts: ${reason}`)
    options.onRetry?.(reason, delayMs, attempt)
    await sleep(delayMs, options.signal)
  }
}

function retryable(status: number): boolean {
  return status >= 500 || status === TOO_MANY_REQUESTS
}

/** Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): uniform in [0, min(cap, base·2^n)). */
function backoff(attempt: number): number {
  return Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1))
}

/** RFC 9110 10.2.3: delay-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (!header) return null
  const ms = /^\d+$/.test(header.trim()) ? Number(header.trim()) * 1000 : Date.parse(header) - now
  return Number.isNaN(ms) ? null : Math.min(RETRY_AFTER_CAP_MS, Math.max(0, ms))
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer)
      reject(new AbortedError())
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
