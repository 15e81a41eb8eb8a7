// GET /info/history's ring: one sample every 5 s, at most an hour of them, oldest first, however long the
// connector runs. A fake clock stands in for the timer, so hours pass in a moment.

import { expect, test } from 'bun:test'
import { type Clock, HISTORY_INTERVAL_MS, HISTORY_SAMPLES, startHistory } from '../../src/http/history.ts'
import type { StatusView } from '../../src/http/status-view.ts'

function fakeClock(start: number) {
  let now = start
  const timers: { every: number; next: number; tick(): void }[] = []
  const clock: Clock = {
    now: () => now,
    every(ms, tick) {
      const timer = { every: ms, next: now + ms, tick }
      timers.push(timer)
      return () => void timers.splice(timers.indexOf(timer), 1)
    },
  }
  const advance = (ms: number) => {
    const until = now + ms
    for (let due = Math.min(...timers.map((t) => t.next)); due <= until; due = Math.min(...timers.map((t) => t.next))) {
      now = due
      for (const timer of timers.filter((t) => t.next === due)) {
        timer.next += timer.every
        timer.tick()
      }
    }
    now = until
  }
  return { clock, advance }
}

const START = Date.parse('2026-12-07T00:00:00Z')

test('history keeps one sample every 5 s and never more than 720: after 90 minutes, the last hour, oldest first', () => {
  const { clock, advance } = fakeClock(START)
  let eventsTotal = 0
  const status = () => ({ state: 'streaming', lagBytes: 0, replicationLatencyMs: 3, eventsTotal: eventsTotal++, pendingChanges: 0, failingSinks: [] }) as unknown as StatusView
  const history = startHistory(status, { clock })

  advance(HISTORY_INTERVAL_MS * 10)
  expect(history.read().samples.length).toBe(11)

  const counts: number[] = []
  for (let minute = 0; minute < 90; minute++) {
    advance(60_000)
    counts.push(history.read().samples.length)
  }
  expect(Math.max(...counts)).toBe(HISTORY_SAMPLES)
  const { intervalMs, samples } = history.read()
  expect(intervalMs).toBe(HISTORY_INTERVAL_MS)
  expect(samples.length).toBe(720)
  const end = START + HISTORY_INTERVAL_MS * 10 + 90 * 60_000
  expect(samples.at(-1)!.at).toBe(new Date(end).toISOString())
  expect(samples[0]!.at).toBe(new Date(end - (HISTORY_SAMPLES - 1) * HISTORY_INTERVAL_MS).toISOString())
  expect(samples.every((sample, index) => index === 0 || Date.parse(sample.at) - Date.parse(samples[index - 1]!.at) === HISTORY_INTERVAL_MS)).toBe(true)
  expect(samples.at(-1)).toEqual({ at: new Date(end).toISOString(), state: 'streaming', lagBytes: 0, replicationLatencyMs: 3, eventsTotal: eventsTotal - 1, pendingChanges: 0, failingSinks: [] })

  history.stop()
  advance(60_000)
  expect(history.read().samples.at(-1)!.at).toBe(new Date(end).toISOString())
})
