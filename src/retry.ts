// Waiting between attempts, for every retry loop of the program (the source's reconnects, the sinks'
// retries, start-up), and the deadline of one attempt. Guarantees: a wait ends at once when the stop signal
// fires, so a stop never sits out a backoff; the delay grows exponentially with jitter, capped.

/** Work abandoned because a stop was asked: not a failure, the next start takes over from the checkpoint. */
export class StopRequested extends Error {
  override name = 'StopRequested'
  constructor(what = 'stopping') {
    super(what)
  }
}

export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30))
  // "Equal jitter": at least half the ceiling, so retries neither stampede nor spin.
  return ceiling / 2 + Math.random() * (ceiling / 2)
}

/** Resolves after `ms`, or as soon as `signal` fires (at once if it has fired already). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** The work's outcome, or `StopRequested` as soon as `signal` fires; the work itself is left to end alone. */
export async function unlessStopped<T>(work: Promise<T>, signal: AbortSignal, what?: string): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {})
    throw new StopRequested(what)
  }
  let onAbort = () => {}
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => reject(new StopRequested(what))
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([work, stopped])
  } finally {
    signal.removeEventListener('abort', onAbort)
    // An abandoned step may fail later, once its connection is closed: that is expected, not unhandled.
    work.catch(() => {})
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
