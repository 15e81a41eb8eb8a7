// The pipeline's ordering and row-state logic against plain fakes of the source and the sinks (the
// end-to-end tests run it against the real servers).

import { describe, expect, test } from 'bun:test'
import type { DecodedMessage } from '../src/decode/types.ts'
import type { EventRow, TaskEvent } from '../src/events/events.ts'
import { createPipeline } from '../src/pipeline.ts'
import type { Source } from '../src/replication/source.ts'
import type { MongoSink } from '../src/sinks/mongo.ts'
import type { Publisher } from '../src/sinks/pubsub.ts'
import { testLog } from './support/log.ts'

const at = { schema: 'public', table: 'tasks', lsn: 1n }
const task = (id: string, status: string) => ({ id, workspace_id: 'w', title: id, description: 'long text', status })

function transaction(commitLsn: bigint, changes: DecodedMessage[]): DecodedMessage[] {
  const frame = { xid: Number(commitLsn), commitLsn, commitTime: '2026-12-01T00:00:00.000Z' }
  return [{ kind: 'begin', ...frame }, ...changes, { kind: 'commit', ...frame }]
}

/** A source that hands out the given deliveries, then ends; `oneByOne`: each once the one before is acknowledged. */
function fakeSource(deliveries: DecodedMessage[][], { oneByOne = false } = {}) {
  let nextSeq = 1
  const acknowledged: number[] = []
  const source = {
    async read() {
      while (oneByOne && nextSeq > 1 && acknowledged.at(-1) !== nextSeq - 1) await Bun.sleep(1)
      const messages = deliveries.shift() ?? []
      const delivery = { firstSeq: nextSeq, messages }
      nextSeq += messages.length
      return delivery
    },
    acknowledge: (seq: number) => void acknowledged.push(seq),
  }
  return { source: source as unknown as Source, acknowledged }
}

/** MongoDB that makes each batch durable only when the test lets it, and answers from what is durable. */
function gatedMongo() {
  const durable = new Map<string, EventRow | null>()
  const waiting: (() => void)[] = []
  const mongo = {
    writeHistory: () => new Promise<void>((resolve) => waiting.push(resolve)),
    async writeState(events: TaskEvent[]) {
      for (const event of events) if (event.taskId) durable.set(event.taskId, event.data)
    },
    async knownRows(_entity: string, ids: string[]) {
      return new Map(ids.filter((id) => durable.has(id)).map((id) => [id, durable.get(id)!]))
    },
    storedEvents: async () => new Map(),
    highestEventId: async () => null,
    writeCheckpoint: async () => {},
  }
  return { mongo: mongo as unknown as MongoSink, waiting }
}

describe('pipeline', () => {
  test('a row pushed out of the cache while its batch is in flight still gives the next event its previous state', async () => {
    const { source, acknowledged } = fakeSource([
      transaction(0x100n, ['a', 'b', 'c'].map((id) => ({ ...at, kind: 'insert', row: task(id, 'todo') }))),
      transaction(0x200n, [{ ...at, kind: 'update', row: { ...task('a', 'done'), description: undefined as never }, identity: null, unchangedToast: ['description'] }]),
    ])
    const { mongo, waiting } = gatedMongo()
    const published: TaskEvent[] = []
    const publisher = { publish: async (events: TaskEvent[]) => void published.push(...events) } as unknown as Publisher
    const pipeline = createPipeline({ source, mongo, publisher, slot: 's', log: testLog, maxBatchEvents: 1, maxInFlightBatches: 8, rowCacheSize: 1 })
    const running = pipeline.run()
    while (published.length < 4) await Bun.sleep(1)
    // Nothing is durable yet: the update was built from the in-flight insert, not from MongoDB.
    expect(acknowledged).toEqual([])
    const update = published.at(-1)!
    expect(update.previous).toMatchObject({ id: 'a', status: 'todo' })
    expect(update.data).toMatchObject({ description: 'long text', status: 'done' })
    expect(update.transition).toEqual({ from: 'todo', to: 'done' })
    while (waiting.length) {
      waiting.shift()!()
      await Bun.sleep(1)
    }
    await running
    expect(acknowledged.at(-1)).toBe(8)
  })

  test('while a sink fails nothing is acknowledged and the sink is named until it succeeds again', async () => {
    const { source, acknowledged } = fakeSource([
      transaction(0x100n, [{ ...at, kind: 'insert', row: task('a', 'todo') }]),
      transaction(0x200n, [{ ...at, kind: 'insert', row: task('b', 'todo') }]),
    ])
    const { mongo, waiting } = gatedMongo()
    let down = true
    let attempts = 0
    const publisher = {
      async publish() {
        attempts++
        if (down) throw new Error('UNAVAILABLE: emulator paused')
      },
    } as unknown as Publisher
    const pipeline = createPipeline({ source, mongo, publisher, slot: 's', log: testLog, maxBatchEvents: 1, retry: { initialDelayMs: 1, maxDelayMs: 2, attemptDeadlineMs: 1_000 } })
    const running = pipeline.run()
    const releaseMongo = setInterval(() => waiting.shift()?.(), 1)
    while (attempts < 5) await Bun.sleep(1)
    expect(pipeline.state.failingSinks).toEqual(['pubsub'])
    expect(acknowledged).toEqual([])
    down = false
    await running
    clearInterval(releaseMongo)
    expect(pipeline.state.failingSinks).toEqual([])
    expect(acknowledged.at(-1)).toBe(6)
  })

  test('a row known at the start of a run keeps its state while the run brings in more rows than the cache holds', async () => {
    const { source } = fakeSource(
      [
        transaction(0x100n, [{ ...at, kind: 'insert', row: task('a', 'todo') }]),
        transaction(0x200n, [
          ...['b', 'c', 'd'].map((id): DecodedMessage => ({ ...at, kind: 'insert', row: task(id, 'todo') })),
          { ...at, kind: 'update', row: { ...task('a', 'done'), description: undefined as never }, identity: null, unchangedToast: ['description'] },
        ]),
      ],
      { oneByOne: true },
    )
    const { mongo, waiting } = gatedMongo()
    const published: TaskEvent[] = []
    const publisher = { publish: async (events: TaskEvent[]) => void published.push(...events) } as unknown as Publisher
    const pipeline = createPipeline({ source, mongo, publisher, slot: 's', log: testLog, maxBatchEvents: 1, rowCacheSize: 2 })
    const running = pipeline.run()
    const releaseMongo = setInterval(() => waiting.shift()?.(), 1)
    await running
    clearInterval(releaseMongo)
    const update = published.at(-1)!
    expect(update.previous).toMatchObject({ id: 'a', status: 'todo', description: 'long text' })
    expect(update.transition).toEqual({ from: 'todo', to: 'done' })
  })

  test('a sink call that never answers counts as failed at its deadline and is made again', async () => {
    const { source, acknowledged } = fakeSource([transaction(0x100n, [{ ...at, kind: 'insert', row: task('a', 'todo') }])])
    let writes = 0
    const mongo = {
      // The first write hangs for good, as on a connection that died without a word.
      writeHistory: () => (++writes === 1 ? new Promise<void>(() => {}) : Promise.resolve()),
      writeState: async () => {},
      knownRows: async () => new Map(),
      storedEvents: async () => new Map(),
      highestEventId: async () => null,
      writeCheckpoint: async () => {},
    } as unknown as MongoSink
    const publisher = { publish: async () => {} } as unknown as Publisher
    const pipeline = createPipeline({ source, mongo, publisher, slot: 's', log: testLog, retry: { initialDelayMs: 1, maxDelayMs: 2, attemptDeadlineMs: 50 } })
    const running = pipeline.run()
    await Bun.sleep(20)
    expect({ failing: pipeline.state.failingSinks, acknowledged }).toEqual({ failing: [], acknowledged: [] })
    await running
    expect({ writes, failing: pipeline.state.failingSinks, acknowledged: acknowledged.at(-1) }).toEqual({ writes: 2, failing: [], acknowledged: 3 })
  })
})
