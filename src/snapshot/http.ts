// HTTP requests of start-job (token endpoint and GraphQL API) with a deadline and retries.
// Guarantees: one attempt is the request, its redirects and reading its whole JSON body, all within
// REQUEST_TIMEOUT_MS; a network error, a timeout, a body cut short or not JSON (a proxy's HTML page), a 5xx
// or a 429 is retried with capped, jittered exponential backoff (a Retry-After in seconds or as an HTTP
// date is honoured, up to a cap), at most MAX_ATTEMPTS times in all; any other answer is returned to the
// caller with its JSON body (null when it has none); an abort stops at once; a redirect to another origin
// never carries the Authorization header.

// One attempt's deadline, from sending the request to the last byte of its body: a page of 500 tasks is
// well under a megabyte, so 30 s without the whole answer means the server is stuck.
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

/** An answer not worth retrying: its status and its body parsed as JSON (null when empty or not JSON). */
export type JsonAnswer = { status: number; ok: boolean; body: unknown }

/** A fault of one attempt worth another: its reason, and the wait the server asked for. */
class Retryable extends Error {
  constructor(reason: string, readonly retryAfterMs: number | null = null) {
    super(reason)
  }
}

/** Sends the request (`init()` is called anew for each attempt) until an answer that is not worth retrying. */
export async function fetchJson(url: string, init: () => RequestInit, options: RetryOptions): Promise<JsonAnswer> {
  const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS
  for (let attempt = 1; ; attempt++) {
    if (options.signal?.aborted) throw new AbortedError()
    const deadline = AbortSignal.timeout(timeoutMs)
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline
    let reason: string
    let delayMs = backoff(attempt)
    try {
      return await attemptJson(url, init(), signal)
    } catch (error) {
      if (options.signal?.aborted) throw new AbortedError()
      reason = deadline.aborted ? `no whole answer within ${timeoutMs} ms` : (error as Error).message
      if (error instanceof Retryable) delayMs = error.retryAfterMs ?? delayMs
    }
    if (attempt === MAX_ATTEMPTS) throw new RequestError(`${options.what} failed after ${MAX_ATTEMPTS} attempts: ${reason}`)
    options.onRetry?.(reason, delayMs, attempt)
    await sleep(delayMs, options.signal)
  }
}

async function attemptJson(url: string, init: RequestInit, signal: AbortSignal): Promise<JsonAnswer> {
  // Redirects are followed by fetch, which drops Authorization on the way to another origin (the Fetch
  // standard; test/snapshot/http.test.ts holds Bun to it): a token or the client secret stays with its host.
  const response = await fetch(url, { ...init, signal })
  if (retryable(response.status)) {
    await response.body?.cancel()
    throw new Retryable(`HTTP ${response.status}`, retryAfterMs(response.headers.get('retry-after')))
  }
  // A reset or a deadline while the body streams throws here, and is retried like any network error.
  const text = await response.text()
  try {
    return { status: response.status, ok: response.ok, body: JSON.parse(text) }
  } catch {
    // A success that is not JSON (or empty) is a proxy's page or a body cut short, not the API's answer.
    if (response.ok) throw new Retryable(`HTTP ${response.status} with a body that is not JSON (${response.headers.get('content-type') ?? 'no content-type'})`)
    return { status: response.status, ok: false, body: null }
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
