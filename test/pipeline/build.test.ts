// Event building alone: framing into batches, and the replay of events stored before a restart.

import { describe, expect, test } from 'bun:test'
import type { DecodedMessage } from '../../src/decode/types.ts'
import type { TaskEvent } from '../../src/events/events.ts'
import { type Batch, createEventBuilder } from '../../src/pipeline/build.ts'
import type { MongoSink } from '../../src/sinks/mongo.ts'

const at = { schema: 'public', table: 'tasks', lsn: 1n }
const task = (id: string, status: string) => ({ id, workspace_id: 'w', title: id, status })

function transaction(commitLsn: bigint, changes: DecodedMessage[]): DecodedMessage[] {
  const frame = { xid: Number(commitLsn), commitLsn, commitTime: '2026-12-01T00:00:00.000Z' }
  return [{ kind: 'begin', ...frame }, ...changes, { kind: 'commit', ...frame }]
}

function builder(stored: TaskEvent[] = [], maxBatchEvents = 1_000) {
  const asked: string[][] = []
  const mongo: Pick<MongoSink, 'knownRows' | 'storedEvents' | 'highestEventId'> = {
    knownRows: async () => new Map(),
    async storedEvents(ids) {
      asked.push(ids)
      return new Map(stored.filter((event) => ids.includes(event.id)).map((event) => [event.id, event]))
    },
    highestEventId: async () => stored.at(-1)?.id ?? null,
  }
  return { build: createEventBuilder({ mongo, retryMongo: (work) => work(), maxBatchEvents, rowCacheSize: 10 }), asked }
}

async function batchesOf(build: ReturnType<typeof builder>['build'], firstSeq: number, messages: DecodedMessage[]) {
  const batches: Batch[] = []
  await build.build(firstSeq, messages, async (batch) => void batches.push(batch))
  return batches
}

describe('event building', () => {
  test('a run is cut into numbered batches of at most maxBatchEvents, each covering its messages, the last one its commit', async () => {
    const { build } = builder([], 2)
    const messages = transaction(0x100n, ['a', 'b', 'c'].map((id): DecodedMessage => ({ ...at, kind: 'insert', row: task(id, 'todo') })))
    const batches = await batchesOf(build, 7, messages)
    expect(batches.map(({ number, events, lastSeq, commitLsn }) => ({ number, ids: events.map((event) => event.taskId), lastSeq, commitLsn }))).toEqual([
      { number: 0, ids: ['a', 'b'], lastSeq: 9, commitLsn: null },
      { number: 1, ids: ['c'], lastSeq: 11, commitLsn: 0x100n },
    ])
  })

  test('after a resync an event stored before is sent as stored, and later ones are built', async () => {
    const messages = transaction(0x100n, [
      { ...at, kind: 'insert', row: task('a', 'todo') },
      { ...at, kind: 'insert', row: task('b', 'todo') },
    ])
    const first = builder()
    const [original] = await batchesOf(first.build, 1, messages)
    const storedA = { ...original!.events[0]!, data: { ...original!.events[0]!.data, title: 'as stored' } }
    const { build, asked } = builder([storedA])
    await build.resync()
    const [replayed] = await batchesOf(build, 1, messages)
    expect(asked).toEqual([[storedA.id]])
    expect(replayed!.events).toEqual([storedA, original!.events[1]!])
  })

  test('a key change is two events, and the replay index counts both: every later event of the transaction is sent as stored', async () => {
    const messages = transaction(0x100n, [
      { ...at, kind: 'insert', row: task('a', 'todo') },
      { ...at, kind: 'update', row: task('b', 'doing'), identity: { id: 'a' }, unchangedToast: [] },
      { ...at, kind: 'insert', row: task('c', 'todo') },
    ])
    const [original] = await batchesOf(builder().build, 1, messages)
    expect(original!.events.map((event) => [event.id, event.type, event.taskId])).toEqual([
      ['0000000000000100-00000000', 'task.created', 'a'],
      ['0000000000000100-00000001', 'task.deleted', 'a'],
      ['0000000000000100-00000002', 'task.created', 'b'],
      ['0000000000000100-00000003', 'task.created', 'c'],
    ])
    const stored = original!.events.map((event) => ({ ...event, commitTime: 'as stored' }))
    const { build, asked } = builder(stored)
    await build.resync()
    const [replayed] = await batchesOf(build, 1, messages)
    expect(asked).toEqual([stored.map((event) => event.id)])
    expect(replayed!.events).toEqual(stored)
  })
})
