// Delivery alone: one batch's history is stored while the batch before writes its rows, and no batch's rows
// are written before its own history and every earlier batch's.

import { describe, expect, test } from 'bun:test'
import type { TaskEvent } from '../../src/events/events.ts'
import { createDelivery } from '../../src/pipeline/delivery.ts'
import { testLog } from '../support/log.ts'

const batch = (name: string) => [{ id: name }] as unknown as TaskEvent[]

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
