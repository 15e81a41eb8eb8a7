// Commit alone: batches delivered out of order are still checkpointed and acknowledged in order.

import { describe, expect, test } from 'bun:test'
import type { Lsn } from '../../src/replication/lsn.ts'
import type { Batch } from '../../src/pipeline/build.ts'
import { createCommit } from '../../src/pipeline/commit.ts'

const batch = (number: number, commitLsn: Lsn | null): Batch => ({ number, events: [], lastSeq: number * 10, commitLsn })

function deferred() {
  let resolve = () => {}
  const promise = new Promise<void>((done) => (resolve = done))
  return { promise, resolve }
}

describe('commit', () => {
  test('a batch delivered before an earlier one waits for it: checkpoints, acknowledgements and settling go in order', async () => {
    const seen: string[] = []
    const commit = createCommit({
      source: { acknowledge: (seq) => void seen.push(`ack ${seq}`) },
      checkpoint: async (lsn) => void seen.push(`checkpoint ${lsn}`),
      maxInFlight: 4,
      settled: (settled) => void seen.push(`settled ${settled.number}`),
      onDurable: () => void seen.push('durable'),
      signal: new AbortController().signal,
    })
    const [first, second] = [deferred(), deferred()]
    commit.add(batch(1, 0x100n), first.promise)
    commit.add(batch(2, null), second.promise)
    second.resolve()
    await Bun.sleep(5)
    expect({ seen, inFlight: commit.inFlight }).toEqual({ seen: [], inFlight: 2 })
    first.resolve()
    await commit.committed()
    expect({ seen, inFlight: commit.inFlight }).toEqual({
      seen: ['checkpoint 256', 'ack 10', 'settled 1', 'durable', 'ack 20', 'settled 2', 'durable'],
      inFlight: 0,
    })
  })

  test('with every slot taken the reader waits until a batch commits', async () => {
    const commit = createCommit({ source: { acknowledge() {} }, checkpoint: async () => {}, maxInFlight: 1, settled() {}, signal: new AbortController().signal })
    const delivery = deferred()
    commit.add(batch(1, null), delivery.promise)
    let free = false
    const waiting = commit.waitForSlot().then(() => (free = true))
    await Bun.sleep(5)
    expect(free).toBe(false)
    delivery.resolve()
    await waiting
    expect(commit.inFlight).toBe(0)
  })
})
