// GET /info/history (contract section 5): the last hour of /info's figures, one sample every 5 s, in a
// ring of fixed size. Guarantees: never more than HISTORY_SAMPLES samples, whatever the uptime (the ring is
// allocated once and overwritten in place); samples come out oldest first; the sampling is one timer and a
// read of in-memory status, the only work the status page adds while nobody looks at it.

import type { StatusView } from './status-view.ts'

/** The contract's sampling interval: the readiness checks and the lag poll refresh their figures as often. */
export const HISTORY_INTERVAL_MS = 5_000
/** One hour at HISTORY_INTERVAL_MS. */
export const HISTORY_SAMPLES = 720

export type HistorySample = {
  at: string
  state: StatusView['state']
  lagBytes: number | null
  replicationLatencyMs: number | null
  eventsTotal: number
  pendingChanges: number
  failingSinks: string[]
}

/** The timer the history runs on: the real one, or a fake clock in tests. */
export type Clock = { now(): number; every(ms: number, tick: () => void): () => void }

export const systemClock: Clock = {
  now: Date.now,
  every(ms, tick) {
    const timer = setInterval(tick, ms)
    return () => clearInterval(timer)
  },
}

export type History = ReturnType<typeof startHistory>

export function startHistory(status: () => StatusView, { clock = systemClock, intervalMs = HISTORY_INTERVAL_MS, capacity = HISTORY_SAMPLES } = {}) {
  const ring: HistorySample[] = new Array(capacity)
  let next = 0
  let count = 0

  function record() {
    const { state, lagBytes, replicationLatencyMs, eventsTotal, pendingChanges, failingSinks } = status()
    ring[next] = { at: new Date(clock.now()).toISOString(), state, lagBytes, replicationLatencyMs, eventsTotal, pendingChanges, failingSinks }
    next = (next + 1) % capacity
    count = Math.min(count + 1, capacity)
  }
  record()
  const stop = clock.every(intervalMs, record)

  return {
    /** The body of GET /info/history. */
    read(): { intervalMs: number; samples: HistorySample[] } {
      const start = (next - count + capacity) % capacity
      const samples = Array.from({ length: count }, (_, index) => ring[(start + index) % capacity]!)
      return { intervalMs, samples }
    },
    stop,
  }
}
