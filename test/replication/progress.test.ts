import { describe, expect, test } from 'bun:test'
import { createProgress } from '../../src/replication/progress.ts'

const limits = { maxPendingChanges: 4, maxPendingBytes: 1000 }

describe('acknowledgement progress', () => {
  test('the flush LSN moves only to acknowledged commits, in order', () => {
    const progress = createProgress(limits, 5n)
    const begin = progress.track(10, null)
    const change = progress.track(10, null)
    const commit = progress.track(10, 100n)
    expect(progress.flushLsn).toBe(5n)
    expect(progress.acknowledge(change)).toBe(false)
    expect(progress.flushLsn).toBe(5n)
    expect(progress.acknowledge(commit)).toBe(true)
    expect(progress.flushLsn).toBe(100n)
    expect(progress.acknowledge(begin)).toBe(false)
    expect(progress.pendingChanges).toBe(0)
  })

  test('a keepalive WAL end is confirmed at once when nothing is pending, else after what is pending', () => {
    const progress = createProgress(limits, 0n)
    progress.confirmAfterPending(50n)
    expect(progress.flushLsn).toBe(50n)
    const change = progress.track(1, null)
    progress.confirmAfterPending(80n)
    expect(progress.flushLsn).toBe(50n)
    progress.acknowledge(change)
    expect(progress.flushLsn).toBe(80n)
    progress.confirmAfterPending(70n)
    expect(progress.flushLsn).toBe(80n)
  })

  test('full at either limit, roomy again below half of both', () => {
    const progress = createProgress(limits, 0n)
    const seqs = [1, 2, 3, 4].map(() => progress.track(100, null))
    expect(progress.full()).toBe(true)
    expect(progress.pendingBytes).toBe(400)
    progress.acknowledge(seqs[0]!)
    expect(progress.full()).toBe(false)
    expect(progress.roomy()).toBe(false)
    progress.acknowledge(seqs[1]!)
    expect(progress.roomy()).toBe(true)
    progress.track(900, null)
    expect(progress.full()).toBe(true)
  })

  test('what waits to be handed out counts against the same limits', () => {
    const progress = createProgress(limits, 0n)
    progress.track(100, null)
    expect(progress.full()).toBe(false)
    expect(progress.full({ changes: 3, bytes: 0 })).toBe(true)
    expect(progress.full({ changes: 0, bytes: 900 })).toBe(true)
    expect(progress.roomy()).toBe(true)
    expect(progress.roomy({ changes: 2, bytes: 0 })).toBe(false)
  })

  test('stays exact over many entries and compactions', () => {
    const progress = createProgress({ maxPendingChanges: 1e9, maxPendingBytes: 1e12 }, 0n)
    let last = 0
    for (let round = 1; round <= 50; round++) {
      for (let i = 0; i < 999; i++) progress.track(3, null)
      last = progress.track(3, BigInt(round))
      progress.acknowledge(last - 500)
      expect(progress.flushLsn).toBe(BigInt(round - 1))
    }
    progress.acknowledge(last)
    expect(progress.flushLsn).toBe(50n)
    expect(progress.pendingChanges).toBe(0)
    expect(progress.pendingBytes).toBe(0)
  })
})
