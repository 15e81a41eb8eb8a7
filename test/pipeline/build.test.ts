// Event building alone: framing into batches, the replay of events stored before a restart, and the life
// cycle across such a replay.

import { describe, expect, test } from 'bun:test'
import type { DecodedMessage } from '../../src/decode/types.ts'
import type { EventRow, TaskEvent } from '../../src/events/events.ts'
import { LIFE_CYCLE, type WithLifeCycle } from '../../src/events/life-cycle.ts'
import type { RowState } from '../../src/events/row-states.ts'
import { type Batch, createEventBuilder } from '../../src/pipeline/build.ts'
import { createEncoder } from '../../src/pipeline/encode.ts'
import type { MongoSink } from '../../src/sinks/mongo.ts'

const at = { schema: 'public', table: 'tasks', lsn: 1n }
const task = (id: string, status: string) => ({ id, workspace_id: 'w', title: id, status })

function transaction(commitLsn: bigint, changes: DecodedMessage[]): DecodedMessage[] {
  // One millisecond of commit time per LSN unit: each transaction commits at its own time.
  const frame = { xid: Number(commitLsn), commitLsn, commitTime: new Date(Date.parse('2026-12-01T00:00:00.000Z') + Number(commitLsn)).toISOString() }
  return [{ kind: 'begin', ...frame }, ...changes, { kind: 'commit', ...frame }]
}

function builder(stored: TaskEvent[] = [], maxBatchEvents = 1_000, { maxBatchBytes = 1 << 20, maxRunRowBytes = 1 << 20, rowCacheBytes = 1 << 20, rows = new Map<string, RowState>() } = {}) {
  const asked: string[][] = []
  const looked: string[][] = []
  const mongo: Pick<MongoSink, 'knownRows' | 'storedEvents' | 'highestEventId'> = {
    async knownRows(_entity, ids) {
      looked.push(ids)
      return new Map(ids.filter((id) => rows.has(id)).map((id) => [id, rows.get(id)!]))
    },
    async storedEvents(ids) {
      asked.push(ids)
      return new Map(stored.filter((event) => ids.includes(event.id)).map((event) => [event.id, event]))
    },
    highestEventId: async () => stored.at(-1)?.id ?? null,
  }
  return { build: createEventBuilder({
      mongo,
      retryMongo: (work) => work(),
      maxBatchEvents,
      maxBatchBytes,
      maxRunRowBytes,
      rowCacheSize: 10,
      rowCacheBytes,
      encode: createEncoder(() => {}),
      landed: async () => {},
    }), asked, looked }
}

/** The batches built; with `settle`, each is settled (durable) as soon as it is handed over. */
async function batchesOf(build: ReturnType<typeof builder>['build'], firstSeq: number, messages: DecodedMessage[], settle = false) {
  const batches: Batch[] = []
  await build.build(firstSeq, messages, async (batch) => {
    batches.push(batch)
    if (settle) build.settled(batch)
  })
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

  test('a batch is cut once its events weigh maxBatchBytes, as encoded', async () => {
    const { build } = builder([], 1_000, { maxBatchBytes: 2_500 })
    const large = (id: string) => ({ ...task(id, 'todo'), description: 'x'.repeat(1_000) })
    const messages = transaction(0x100n, ['a', 'b', 'c'].map((id): DecodedMessage => ({ ...at, kind: 'insert', row: large(id) })))
    const batches = await batchesOf(build, 0, messages)
    expect(batches.map((batch) => batch.events.map((event) => event.taskId))).toEqual([['a', 'b'], ['c']])
    expect(batches[0]!.bytes).toBe(batches[0]!.messages.reduce((sum, message) => sum + message.data.length, 0))
    expect(batches[0]!.bytes).toBeGreaterThanOrEqual(2_500)
  })

  test('an update of many large rows reads them a part of the run at a time, each part about maxRunRowBytes', async () => {
    const ids = Array.from({ length: 40 }, (_, n) => `t${n}`)
    const rows = new Map(ids.map((id): [string, RowState] => [id, { row: { ...task(id, 'todo'), description: 'x'.repeat(1_000) } as EventRow, lifeCycle: null, lastEventId: '' }]))
    const { build, looked } = builder([], 1_000, { maxRunRowBytes: 5_000, rows })
    const messages = transaction(0x100n, ids.map((id): DecodedMessage => ({ ...at, kind: 'update', row: { ...task(id, 'done'), description: undefined as never }, identity: null, unchangedToast: ['description'] })))
    const events = (await batchesOf(build, 0, messages)).flatMap((batch) => batch.events)
    expect(events.map((event) => [event.taskId, event.data!.description, event.previous!.status])).toEqual(ids.map((id) => [id, 'x'.repeat(1_000), 'todo']))
    // The first lookup asks for a few rows, the next ones for what fits in a part: never all 40 at once.
    expect(looked.flat()).toEqual(ids)
    expect(Math.max(...looked.map((lookup) => lookup.length))).toBeLessThanOrEqual(8)
    expect(looked.length).toBeGreaterThanOrEqual(40 / 5)
  })

  test('a row inserted in a run keeps its state for a later change of the run, however many large rows come between', async () => {
    const { build, looked } = builder([], 1, { rowCacheBytes: 2_000 })
    const large = (id: string) => ({ ...task(id, 'todo'), description: `${id} `.repeat(500) })
    const messages = transaction(0x100n, [
      ...['a', 'b', 'c', 'd'].map((id): DecodedMessage => ({ ...at, kind: 'insert', row: large(id) })),
      { ...at, kind: 'update', row: { ...task('a', 'done'), description: undefined as never }, identity: null, unchangedToast: ['description'] },
    ])
    const update = (await batchesOf(build, 0, messages, true)).flatMap((batch) => batch.events).at(-1)!
    expect(update).toMatchObject({ type: 'task.updated', data: { status: 'done', description: large('a').description }, previous: { status: 'todo' } })
    expect(update.unchangedToast).toBeUndefined()
    expect(looked).toEqual([])
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

  test('a replay after a crash republishes what was stored and times the next change exactly, MongoDB row ahead of the replay or behind it', async () => {
    const moves = [0x100n, 0x200n, 0x300n, 0x400n].map((commitLsn, index) =>
      transaction(commitLsn, [
        index === 0
          ? { ...at, kind: 'insert', row: task('a', 'todo') }
          : { ...at, kind: 'update', row: task('a', ['todo', 'in_progress', 'blocked', 'done'][index]!), identity: null, unchangedToast: [] },
      ]),
    )
    const original = (await batchesOf(builder().build, 1, moves.flat())).flatMap((batch) => batch.events) as (TaskEvent & WithLifeCycle)[]
    const stateAfter = (event: TaskEvent & WithLifeCycle): RowState => ({ row: event.data, lifeCycle: event[LIFE_CYCLE]!, lastEventId: event.id })
    // Stored: every event through 0x300; the slot confirmed through 0x100, so the replay starts at 0x200.
    for (const row of [original[2]!, original[1]!]) {
      const { build } = builder(original.slice(0, 3), 1_000, { rows: new Map([['a', stateAfter(row)]]) })
      await build.resync()
      const replayed = (await batchesOf(build, 1, moves.slice(1).flat())).flatMap((batch) => batch.events) as (TaskEvent & WithLifeCycle)[]
      expect(replayed).toEqual(original.slice(1))
      expect(replayed.at(-1)!.transition).toEqual({ from: 'blocked', to: 'done', fromSince: original[2]!.commitTime, inFromMs: 0x100 })
      expect(replayed.at(-1)![LIFE_CYCLE]).toEqual(original.at(-1)![LIFE_CYCLE]!)
      expect(original.at(-1)![LIFE_CYCLE]).toEqual({
        statusSince: original[3]!.commitTime, timeInStatus: { todo: 0x100, in_progress: 0x100, blocked: 0x100 }, statusVisits: { todo: 1, in_progress: 1, blocked: 1, done: 1 },
      })
    }
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
