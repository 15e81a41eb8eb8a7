// Delivery alone: each sink takes the batches in order, the two sinks independently of each other; one
// batch's history is stored while the batch before writes its rows, and no batch's rows are written before
// its own history and every earlier batch's.

import { describe, expect, test } from 'bun:test'
import type { TaskEvent } from '../../src/events/events.ts'
import { createDelivery } from '../../src/pipeline/delivery.ts'
import { testLog } from '../support/log.ts'

const batch = (id: string) => [{ id } as TaskEvent]

/** A MongoDB whose every write waits until the test finishes it by name ('history 1', 'state 2'). */
function gatedMongo() {
  const started: string[] = []
  const finish = new Map<string, () => void>()
  const write = (kind: string) => (events: TaskEvent[]) => {
    const name = `${kind} ${events[0]!.id}`
    started.push(name)
    return new Promise<void>((resolve) => finish.set(name, resolve))
  }
  return {
    mongo: { writeHistory: write('history'), writeState: write('state') },
    started,
    async finish(name: string) {
      finish.get(name)!()
      await Bun.sleep(5)
    },
  }
}

describe('delivery', () => {
  test('each sink takes the batches one after the other, while the other sink goes ahead', async () => {
    const seen: string[] = []
    let releasePublish = () => {}
    const publishHeld = new Promise<void>((resolve) => (releasePublish = resolve))
    const delivery = createDelivery({
      mongo: { writeHistory: async () => {}, writeState: async (events) => void seen.push(`mongo ${events[0]!.id}`) },
      publisher: {
        async publish(events) {
          if (events[0]!.id === '1') await publishHeld
          seen.push(`pubsub ${events[0]!.id}`)
        },
      },
      log: testLog,
      signal: new AbortController().signal,
    })
    const delivered = [delivery.deliver(batch('1')), delivery.deliver(batch('2'))]
    while (seen.length < 2) await Bun.sleep(1)
    expect(seen).toEqual(['mongo 1', 'mongo 2'])
    releasePublish()
    await Promise.all(delivered)
    expect(seen).toEqual(['mongo 1', 'mongo 2', 'pubsub 1', 'pubsub 2'])
    expect(delivery.stats).toEqual({ eventsTotal: 2, lastEventId: '2' })
  })

  test('a failing sink is named until the operation succeeds, and the operation is made again', async () => {
    let attempts = 0
    const delivery = createDelivery({
      mongo: { writeHistory: async () => {}, writeState: async () => {} },
      publisher: {
        async publish() {
          if (++attempts < 3) throw new Error('UNAVAILABLE: emulator paused')
        },
      },
      log: testLog,
      retry: { initialDelayMs: 1, maxDelayMs: 2, attemptDeadlineMs: 1_000 },
      signal: new AbortController().signal,
    })
    const delivered = delivery.deliver(batch('1'))
    while (attempts < 2) await Bun.sleep(1)
    expect(delivery.failingSinks()).toEqual(['pubsub'])
    await delivered
    expect({ attempts, failing: delivery.failingSinks() }).toEqual({ attempts: 3, failing: [] })
  })

  test("the next batch's history goes while a batch's rows are written; rows wait for every history before them, and for the rows before", async () => {
    const { mongo, started, finish } = gatedMongo()
    const delivery = createDelivery({ mongo, publisher: { publish: async () => {} }, log: testLog, signal: new AbortController().signal })
    const delivered = ['1', '2', '3'].map((name) => delivery.deliver(batch(name)))
    await Bun.sleep(5)
    expect(started).toEqual(['history 1'])
    await finish('history 1')
    expect(started).toEqual(['history 1', 'history 2', 'state 1'])
    // Batch 2's history is stored before batch 1's rows are: its rows still wait for those.
    await finish('history 2')
    expect(started).toEqual(['history 1', 'history 2', 'state 1', 'history 3'])
    await finish('state 1')
    await finish('history 3')
    expect(started).toEqual(['history 1', 'history 2', 'state 1', 'history 3', 'state 2'])
    await finish('state 2')
    await finish('state 3')
    await Promise.all(delivered)
    expect(delivery.stats).toEqual({ eventsTotal: 3, lastEventId: '3' })
  })
})
