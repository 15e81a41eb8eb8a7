// Drift as the contract defines it, found exactly for a seeded projection: tasks missing (absent, or held
// as tombstones while the API has them), extra (live projection tasks the API lacks; an extra tombstone is
// no drift), stale (status or updatedAt differ), with counts and example ids, in the event and the record.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { published, RUN_MS, type SnapshotStack, STACK_START_MS, startJobProcess, startSnapshotStack, target } from '../support/start-job.ts'
import { type ApiTask, taskAt } from '../support/workspace-api.ts'

const WORKSPACES = 3
const TASKS_PER_WORKSPACE = 40

/** The task as extract-tasks stores it: its fields, timestamps as dates, lastEventId. */
function projected(task: ApiTask, change: Partial<{ status: string; updatedAt: string; deleted: boolean }> = {}) {
  const { id, createdAt, updatedAt, dueAt, ...rest } = { ...task, ...change }
  return {
    _id: id,
    ...rest,
    createdAt: new Date(createdAt),
    updatedAt: new Date(updatedAt),
    dueAt: dueAt ? new Date(dueAt) : null,
    lastEventId: '0000000001000000-00000000',
  }
}

describe('drift', () => {
  let stack: SnapshotStack
  beforeAll(async () => {
    stack = await startSnapshotStack({ workspaces: WORKSPACES, tasksPerWorkspace: TASKS_PER_WORKSPACE })
  }, STACK_START_MS)
  afterAll(() => stack.stop())

  test('missing, extra and stale found exactly against the tasks collection', async () => {
    const to = target('drift')
    const expected = { missing: [] as string[], extra: [] as string[], stale: [] as string[] }
    const documents = []
    for (let w = 0; w < WORKSPACES; w++)
      for (let t = 0; t < TASKS_PER_WORKSPACE; t++) {
        const task = taskAt(w, t)
        if (t % 10 === 1) expected.missing.push(task.id) // never seen by the projection
        else if (t % 10 === 2) {
          expected.missing.push(task.id) // deleted in the projection, alive in the API
          documents.push(projected(task, { deleted: true }))
        } else if (t % 10 === 3) {
          expected.stale.push(task.id)
          documents.push(projected(task, { status: task.status === 'done' ? 'todo' : 'done' }))
        } else if (t % 10 === 4) {
          expected.stale.push(task.id)
          documents.push(projected(task, { updatedAt: new Date(Date.parse(task.updatedAt) - 1).toISOString() }))
        } else documents.push(projected(task))
      }
    // Tasks the API does not have: live ones are extra, tombstones are not.
    for (let t = 0; t < 5; t++) {
      const gone = projected(taskAt(WORKSPACES + 1, t))
      expected.extra.push(gone._id)
      documents.push(gone, projected(taskAt(WORKSPACES + 2, t), { deleted: true }))
    }
    await stack.mongoClient.db(to.database).collection('tasks').insertMany(documents as any[])

    const run = await startJobProcess(stack, to, ['--once', '--page-size', '7']).done
    expect(run.exitCode).toBe(0)
    const completed = (await published(stack, to.topic)).at(-1)!.event
    expect(completed.type).toBe('snapshot.completed')
    const { drift } = completed.data
    expect({ missing: drift.missing, extra: drift.extra, stale: drift.stale }).toEqual({
      missing: expected.missing.length,
      extra: expected.extra.length,
      stale: expected.stale.length,
    })
    for (const kind of ['missing', 'extra', 'stale'] as const) expect([...drift.examples[kind]].sort()).toEqual(expected[kind].sort())

    const record = await stack.mongoClient.db(to.database).collection('snapshots').findOne({ _id: completed.data.snapshotId })
    expect(record!.drift).toEqual(drift)
  }, RUN_MS)

  test('at most 100 example ids of each kind', async () => {
    const to = target('drift-examples')
    const run = await startJobProcess(stack, to, ['--once']).done
    expect(run.exitCode).toBe(0)
    const { drift } = (await published(stack, to.topic)).at(-1)!.event.data
    expect(drift.missing).toBe(WORKSPACES * TASKS_PER_WORKSPACE)
    expect(drift.examples.missing).toHaveLength(100)
    expect(new Set(drift.examples.missing).size).toBe(100)
  }, RUN_MS)
})
