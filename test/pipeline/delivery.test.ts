// Delivery alone: each sink takes the batches in order, the two sinks independently of each other.

import { describe, expect, test } from 'bun:test'
import type { TaskEvent } from '../../src/events/events.ts'
import { createDelivery } from '../../src/pipeline/delivery.ts'
import { testLog } from '../support/log.ts'

const batch = (id: string) => [{ id } as TaskEvent]

describe('delivery', () => {
  test('each sink takes the batches one after the other, while the other sink goes ahead', async () => {
    const seen: string[] = []
    let releasePublish = () => {}
    const publishHeld = new Promise<void>((resolve) => (releasePublish = resolve))
    const delivery = createDelivery({
      mongo: { writeBatch: async (events) => void seen.push(`mongo ${events[0]!.id}`) },
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
      mongo: { writeBatch: async () => {} },
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
})
