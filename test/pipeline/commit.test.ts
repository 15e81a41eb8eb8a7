// Commit alone: batches delivered out of order are still checkpointed and acknowledged in order.

import { describe, expect, test } from 'bun:test'
import type { Lsn } from '../../src/replication/lsn.ts'
import type { Batch } from '../../src/pipeline/build.ts'
import { createCommit } from '../../src/pipeline/commit.ts'
import { noEvents } from '../../src/pipeline/encode.ts'

const batch = (number: number, commitLsn: Lsn | null, bytes = 0): Batch => ({ number, ...noEvents(), bytes, lastSeq: number * 10, commitLsn })

/** Waits for a slot for `bytes` while `delivery` is held: the wait must last until the delivery is let go. */
async function expectWaitUntil(commit: ReturnType<typeof createCommit>, bytes: number, delivery: { resolve(): void }) {
  let free = false
  const waiting = commit.waitForSlot(bytes).then(() => (free = true))
  await Bun.sleep(5)
  expect(free).toBe(false)
  delivery.resolve()
  await waiting
}

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
      maxInFlightBytes: 1_000,
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
    const commit = createCommit({ source: { acknowledge() {} }, checkpoint: async () => {}, maxInFlight: 1, maxInFlightBytes: 1_000, settled() {}, signal: new AbortController().signal })
    const delivery = deferred()
    commit.add(batch(1, null), delivery.promise)
    await expectWaitUntil(commit, 0, delivery)
    expect(commit.inFlight).toBe(0)
  })

  test('batches outstanding weigh at most maxInFlightBytes together, though one alone may weigh more', async () => {
    const commit = createCommit({ source: { acknowledge() {} }, checkpoint: async () => {}, maxInFlight: 16, maxInFlightBytes: 1_000, settled() {}, signal: new AbortController().signal })
    await commit.waitForSlot(5_000)
    const heavy = deferred()
    commit.add(batch(1, null, 5_000), heavy.promise)
    await expectWaitUntil(commit, 10, heavy)
    const light = deferred()
    commit.add(batch(2, null, 600), light.promise)
    await commit.waitForSlot(400)
    commit.add(batch(3, null, 400), Promise.resolve())
    await expectWaitUntil(commit, 1, light)
  })
})
