// Filling in the life cycle of task documents written before the connector kept one, from `task_events`,
// against a real server (FerretDB 1.24 on SQLite).

import { describe, expect, test } from 'bun:test'
import type { TaskEvent } from '../../src/events/events.ts'
import { LIFE_CYCLE } from '../../src/events/life-cycle.ts'
import { fillLifeCycles } from '../../src/sinks/life-cycle-backfill.ts'
import { createMongoSink } from '../../src/sinks/mongo.ts'
import { sharedFerretDb } from '../support/shared-ferretdb.ts'

const shared = sharedFerretDb()

const T0 = Date.parse('2026-12-01T00:00:00.000Z')
const at = (ms: number) => new Date(T0 + ms).toISOString()
let commit = 0x100

/** A task event as an older version stored it: its transition without timing, no life cycle for the row. */
function event(taskId: string, type: TaskEvent['type'], ms: number, from: string | null | undefined, to: string | null, source: 'cdc' | 'initial' = 'cdc'): TaskEvent {
  commit += 0x100
  const row = to === null ? null : { id: taskId, workspaceId: 'w', status: to }
  return {
    id: `${commit.toString(16).toUpperCase().padStart(16, '0')}-00000000`, type, source, workspaceId: 'w', taskId, lsn: null, xid: commit, commitTime: at(ms),
    data: row, previous: from ? { id: taskId, workspaceId: 'w', status: from } : null,
    ...(from !== undefined && { transition: { from, to } as TaskEvent['transition'] }),
  }
}

describe('life-cycle backfill', () => {
  test('documents written before the life cycle was kept get what the live path gives, once; others are left alone', async () => {
    const db = shared.client.db('backfill')
    const sink = createMongoSink(shared.client, 'backfill')
    const created = [event('t1', 'task.created', 0, null, 'todo'), event('t1', 'task.updated', 10_000, 'todo', 'in_progress'), event('t1', 'task.updated', 12_000, undefined, 'in_progress')]
    const loaded = [event('t2', 'task.snapshot', 0, undefined, 'in_progress', 'initial'), event('t2', 'task.updated', 5_000, 'in_progress', 'done'), event('t2', 'task.deleted', 7_000, 'done', null)]
    const kept = { ...event('t3', 'task.created', 0, null, 'todo'), [LIFE_CYCLE]: { statusSince: at(0), timeInStatus: { x: 1 }, statusVisits: { todo: 1 } } }
    await sink.writeBatch([...created, ...loaded, kept])
    // A change the document does not reflect yet (its history stored, its row not written: a crash between the two).
    const pending = event('t1', 'task.updated', 25_000, 'in_progress', 'done')
    await db.collection('task_events').insertOne({ _id: pending.id as never, taskId: 't1', type: pending.type, source: 'cdc', commitTime: new Date(pending.commitTime), transition: pending.transition, data: pending.data })

    expect(await fillLifeCycles(db)).toBe(2)
    const documents = new Map((await db.collection('tasks').find().toArray()).map((document) => [document._id as unknown as string, document]))
    expect(documents.get('t1')).toMatchObject({ statusSince: new Date(at(10_000)), timeInStatus: { todo: 10_000 }, statusVisits: { todo: 1, in_progress: 1 } })
    expect(documents.get('t2')).toMatchObject({ deleted: true, statusSince: null, timeInStatus: { done: 2_000 }, statusVisits: { done: 1 } })
    expect(documents.get('t3')).toMatchObject({ timeInStatus: { x: 1 } })
    expect(await fillLifeCycles(db)).toBe(0)
  })
})
