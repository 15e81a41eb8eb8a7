// The MongoDB sink against a real server (FerretDB 1.24 on SQLite): a row never moves backwards, whoever
// writes it and in whatever order the writes land; a replayed batch adds nothing.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { MongoClient } from 'mongodb'
import { TIMESTAMPS } from '../../src/decode/types.ts'
import type { TaskEvent } from '../../src/events/events.ts'
import { createMongoSink } from '../../src/sinks/mongo.ts'
import { type FerretDb, startFerretDb } from '../support/ferretdb.ts'

let ferret: FerretDb
let client: MongoClient
let database = 0

beforeAll(async () => {
  ferret = await startFerretDb()
  client = new MongoClient(ferret.url)
}, 120_000)
afterAll(async () => {
  await client?.close()
  await ferret?.close()
}, 120_000)

const taskEvent = (commit: number, status: string): TaskEvent => ({
  id: `${commit.toString(16).toUpperCase().padStart(16, '0')}-00000000`,
  type: 'task.updated',
  source: 'cdc',
  workspaceId: 'w1',
  taskId: 't1',
  lsn: `0/${commit.toString(16).toUpperCase()}`,
  xid: commit,
  commitTime: '2026-12-01T00:00:00.000Z',
  data: { id: 't1', workspaceId: 'w1', status, updatedAt: '2026-12-01T00:00:00.000Z', [TIMESTAMPS]: ['updatedAt'] },
  previous: null,
})

/** A sink on a database of its own; each sink is a connector process's worth of memory. */
const freshSink = (name: string) => createMongoSink(client, name)

describe('MongoDB sink', () => {
  test('a later event replaces the row; an earlier one written afterwards, by this sink or another, leaves it alone', async () => {
    const name = `sink_${database++}`
    const sink = freshSink(name)
    await sink.writeBatch([taskEvent(0x100, 'todo')])
    await sink.writeBatch([taskEvent(0x300, 'done')])
    await sink.writeBatch([taskEvent(0x200, 'in_progress')])
    // A process that knows nothing of the row (a restart) …
    await freshSink(name).writeBatch([taskEvent(0x200, 'in_progress')])
    // … and one whose knowledge is out of date: it wrote 0x100 and believes the row is still there, while
    // another write (0x400) came in between (a retry beside an attempt that was given up on but lands).
    const stale = freshSink(name)
    await stale.writeBatch([taskEvent(0x100, 'todo')])
    await sink.writeBatch([taskEvent(0x400, 'done')])
    await stale.writeBatch([taskEvent(0x200, 'in_progress')])
    const row = await client.db(name).collection('tasks').findOne({ _id: 't1' as never })
    expect(row).toMatchObject({ status: 'done', lastEventId: taskEvent(0x400, 'done').id, updatedAt: new Date('2026-12-01T00:00:00.000Z') })
    expect(await client.db(name).collection('task_events').countDocuments()).toBe(4)
  })

  test('a batch written again, as a replay does, adds no event and changes no row', async () => {
    const name = `sink_${database++}`
    const batch = [taskEvent(0x100, 'todo'), { ...taskEvent(0x200, 'blocked'), taskId: 't2', data: { id: 't2', workspaceId: 'w1', status: 'blocked' } }]
    await freshSink(name).writeBatch(batch)
    const before = await client.db(name).collection('tasks').find().sort({ _id: 1 }).toArray()
    await freshSink(name).writeBatch(batch)
    expect(await client.db(name).collection('task_events').countDocuments()).toBe(2)
    expect(await client.db(name).collection('tasks').find().sort({ _id: 1 }).toArray()).toEqual(before)
  })

  test("each row's own timestamps are dates, whatever other rows hold; an event read back is written with the same types", async () => {
    const name = `sink_${database++}`
    const sink = freshSink(name)
    const later = { ...taskEvent(0x200, 'done'), taskId: 't2' }
    // A column added later: a timestamp in this row, and a plain string of the same name in another table's row.
    later.data = { ...later.data!, id: 't2', startedAt: '2026-12-02T08:00:00.000Z', [TIMESTAMPS]: ['updatedAt', 'startedAt'] }
    const workspace: TaskEvent = { ...taskEvent(0x300, 'x'), type: 'workspace.updated', taskId: null, data: { id: 'w1', startedAt: 'not a time' } }
    await sink.writeBatch([taskEvent(0x100, 'todo'), later, workspace])
    const tasks = client.db(name).collection('tasks')
    expect((await tasks.findOne({ _id: 't2' as never }))!.startedAt).toEqual(new Date('2026-12-02T08:00:00.000Z'))
    expect((await client.db(name).collection('workspaces').findOne({ _id: 'w1' as never }))!.startedAt).toBe('not a time')
    const stored = await client.db(name).collection('task_events').findOne({ _id: later.id as never })
    expect(stored!.data.startedAt).toBeInstanceOf(Date)
    expect(Object.keys(stored!.data).sort()).toEqual(Object.keys(later.data!).sort())

    const [replayed] = (await sink.storedEvents([later.id])).values()
    expect(replayed!.data).toEqual(later.data!)
    const other = `sink_${database++}`
    await freshSink(other).writeBatch([replayed!])
    expect((await client.db(other).collection('tasks').findOne({ _id: 't2' as never }))!.startedAt).toEqual(new Date('2026-12-02T08:00:00.000Z'))
  })

  test('batches whose rows are written out of order (forced) leave every row at its newest event and the history whole', async () => {
    // Three batches over six tasks: inserts, updates, deletes and a row inserted again after its delete.
    const change = (commit: number, taskId: string, status: string | null): TaskEvent => ({
      ...taskEvent(commit, status ?? 'deleted'),
      id: `${commit.toString(16).toUpperCase().padStart(16, '0')}-${taskId.padStart(8, '0')}`,
      type: status ? 'task.updated' : 'task.deleted',
      taskId,
      data: status ? { id: taskId, workspaceId: 'w1', status } : null,
      previous: status ? null : { id: taskId, workspaceId: 'w1', status: 'before its delete' },
    })
    const batches = [
      ['t1', 't2', 't3', 't4'].map((id) => change(0x100, id, 'todo')),
      [change(0x200, 't1', 'in_progress'), change(0x200, 't2', null), change(0x200, 't3', 'blocked'), change(0x200, 't5', 'todo')],
      [change(0x300, 't1', 'done'), change(0x300, 't2', 'todo again'), change(0x300, 't3', null), change(0x300, 't6', 'todo')],
    ]
    const newest = new Map(batches.flat().map((event) => [event.taskId!, event]))
    for (const [order, concurrently] of [[[2, 0, 1], false], [[1, 2, 0], true]] as const) {
      const name = `sink_${database++}`
      const sink = freshSink(name)
      for (const events of batches) await sink.writeHistory(events)
      if (concurrently) await Promise.all(order.map((index) => sink.writeState(batches[index]!)))
      else for (const index of order) await sink.writeState(batches[index]!)
      const rows = await client.db(name).collection<{ _id: string; lastEventId: string; status: string; deleted?: boolean }>('tasks').find().sort({ _id: 1 }).toArray()
      expect(rows.map(({ _id, lastEventId, status, deleted }) => ({ _id, lastEventId, status, deleted: deleted ?? false }))).toEqual(
        [...newest.values()]
          .sort((a, b) => (a.taskId! < b.taskId! ? -1 : 1))
          .map((event) => ({ _id: event.taskId!, lastEventId: event.id, status: (event.data ?? event.previous)!.status as string, deleted: !event.data })),
      )
      const history = await client.db(name).collection<{ _id: string }>('task_events').find({}, { projection: { _id: 1 } }).sort({ _id: 1 }).toArray()
      expect(history.map(({ _id }) => _id)).toEqual(batches.flat().map((event) => event.id).sort())
    }
  })
})
