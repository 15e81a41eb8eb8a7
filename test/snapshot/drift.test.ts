// Drift as the contract defines it, found exactly for a seeded projection: tasks missing (absent, or held
// as tombstones while the API has them), extra (live projection tasks the API lacks; an extra tombstone is
// no drift), stale (status or updatedAt differ), with counts and example ids, in the event and the record;
// tasks that extract-tasks changes during the run left out and counted apart; SIGTERM during the
// comparison recording `aborted`. The id table past its first resize and the example caps, on plain data.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createDriftCheck, MAX_EXAMPLES, type ProjectionDocument } from '../../src/snapshot/drift.ts'
import { waitFor } from '../support/ports.ts'
import { published, RUN_MS, type SnapshotStack, STACK_START_MS, startJobProcess, startSnapshotStack, target } from '../support/start-job.ts'
import { type ApiTask, taskAt } from '../support/workspace-api.ts'

const WORKSPACES = 3
const TASKS_PER_WORKSPACE = 40

// Event ids before the run's checkpoint (0/1000000) and after the one extract-tasks advances to meanwhile.
const OLD_EVENT_ID = '0000000001000000-00000000'
const NEW_EVENT_ID = '0000000002000000-00000003'

/** The task as extract-tasks stores it: its fields, timestamps as dates, lastEventId. */
function projected(task: ApiTask, change: Partial<{ status: string; updatedAt: string; deleted: boolean; lastEventId: string }> = {}) {
  const { id, createdAt, updatedAt, dueAt, ...rest } = { ...task, ...change }
  return {
    _id: id,
    ...rest,
    createdAt: new Date(createdAt),
    updatedAt: new Date(updatedAt),
    dueAt: dueAt ? new Date(dueAt) : null,
    lastEventId: change.lastEventId ?? OLD_EVENT_ID,
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

  test('tasks changed during the run are left out of drift and counted in changedDuringRun', async () => {
    const to = target('drift-during')
    const db = stack.mongoClient.db(to.database)
    // A projection equal to the API but for one task of each kind of drift, seeded before the run.
    const documents = []
    for (let w = 0; w < WORKSPACES; w++) for (let t = w === 0 ? 1 : 0; t < TASKS_PER_WORKSPACE; t++) documents.push(projected(taskAt(w, t)))
    const stale = taskAt(0, 1)
    documents[0] = projected(stale, { status: stale.status === 'done' ? 'todo' : 'done' })
    const extra = projected(taskAt(WORKSPACES + 1, 0))
    await db.collection('tasks').insertMany([...documents, extra] as any[])
    await db.collection('checkpoints').insertOne({ _id: 'task_connector' as any, lsn: '0/1000000', updatedAt: new Date() })
    const missing = taskAt(0, 0).id

    stack.api.faults.delayMs = 200
    const job = startJobProcess(stack, to, ['--once', '--page-size', '10'])
    const changed = []
    try {
      await waitFor('the run under way', async () => (await db.collection('snapshots').countDocuments({ outcome: 'running' })) === 1, 20_000, 50)
      // As extract-tasks would meanwhile: created, deleted and changed, each with a newer lastEventId, and the
      // checkpoint advanced past them. Each would otherwise be extra, missing or stale.
      const tasks = db.collection('tasks')
      for (let t = 0; t < 3; t++) changed.push(projected(taskAt(WORKSPACES + 3, t), { lastEventId: NEW_EVENT_ID }))
      await tasks.insertMany(changed as any[])
      for (const task of [taskAt(1, 5), taskAt(1, 6)]) {
        await tasks.replaceOne({ _id: task.id as any }, projected(task, { deleted: true, lastEventId: NEW_EVENT_ID }))
        changed.push(task)
      }
      for (const task of [taskAt(2, 7), taskAt(2, 8)]) {
        await tasks.replaceOne({ _id: task.id as any }, projected(task, { status: 'archived', lastEventId: NEW_EVENT_ID }))
        changed.push(task)
      }
      await db.collection('checkpoints').updateOne({ _id: 'task_connector' as any }, { $set: { lsn: '0/2000000', updatedAt: new Date() } })
    } finally {
      stack.api.faults.delayMs = 0
    }
    const run = await job.done
    expect(run.exitCode).toBe(0)
    const { drift } = (await published(stack, to.topic)).at(-1)!.event.data
    expect(drift).toEqual({
      missing: 1,
      extra: 1,
      stale: 1,
      changedDuringRun: changed.length,
      examples: { missing: [missing], extra: [extra._id], stale: [stale.id] },
    })
  }, RUN_MS)

  test('SIGTERM during the drift comparison records the run aborted, and publishes no snapshot.completed', async () => {
    const to = target('drift-aborted')
    const db = stack.mongoClient.db(to.database)
    stack.api.faults.delayMs = 200
    const job = startJobProcess(stack, to, ['--once', '--page-size', '10'])
    try {
      await waitFor('the run under way', async () => (await db.collection('snapshots').countDocuments({ outcome: 'running' })) === 1, 20_000, 50)
      // MongoDB hung from here on: the pages are read and published, and the comparison waits on its first batch.
      stack.mongo.freeze()
      await waitFor('every page published', async () => (await stack.pubsub.count(to.topic)) === WORKSPACES + WORKSPACES * TASKS_PER_WORKSPACE, 30_000, 50)
      job.process.kill('SIGTERM')
      await Bun.sleep(1_000)
    } finally {
      stack.mongo.thaw()
      stack.api.faults.delayMs = 0
    }
    const run = await job.done
    expect(run.exitCode).toBe(0)
    expect(await db.collection('snapshots').find().toArray()).toMatchObject([{ outcome: 'aborted', drift: null }])
    expect((await published(stack, to.topic)).filter(({ event }) => event.type === 'snapshot.completed')).toHaveLength(0)
  }, RUN_MS)
})

describe('the drift check on plain data', () => {
  const uuid = (n: number) => `${n.toString(16).padStart(8, '0')}-0000-4000-8000-${'0'.repeat(12)}`
  async function* batches(documents: ProjectionDocument[]) {
    for (let i = 0; i < documents.length; i += 1_000) yield documents.slice(i, i + 1_000)
  }

  test('ids still match after the table has grown past its first size', async () => {
    // 16,384 slots at the start, doubled at half full: 40,000 ids grow it three times.
    const count = 40_000
    const check = createDriftCheck()
    for (let n = 0; n < count; n++) check.observe({ id: uuid(n), status: 'todo', updatedAt: '2026-01-01T00:00:00.000Z' })
    const projection: ProjectionDocument[] = []
    for (let n = 1; n < count; n++) projection.push({ _id: uuid(n), status: n === 7 ? 'done' : 'todo', updatedAt: new Date('2026-01-01T00:00:00.000Z') })
    expect(await check.compare(batches(projection), null)).toEqual({
      missing: 1,
      extra: 0,
      stale: 1,
      changedDuringRun: 0,
      examples: { missing: [uuid(0)], extra: [], stale: [uuid(7)] },
    })
  })

  test(`extra and stale examples stop at ${MAX_EXAMPLES}, the counts do not`, async () => {
    const check = createDriftCheck()
    for (let n = 0; n < 150; n++) check.observe({ id: uuid(n), status: 'todo', updatedAt: '2026-01-01T00:00:00.000Z' })
    const projection: ProjectionDocument[] = []
    for (let n = 0; n < 150; n++) projection.push({ _id: uuid(n), status: 'done', updatedAt: new Date('2026-01-01T00:00:00.000Z') })
    for (let n = 1_000; n < 1_150; n++) projection.push({ _id: uuid(n), status: 'todo', updatedAt: new Date('2026-01-01T00:00:00.000Z') })
    const drift = await check.compare(batches(projection), null)
    expect([drift.extra, drift.stale, drift.missing]).toEqual([150, 150, 0])
    expect(drift.examples.extra).toEqual(projection.slice(150, 250).map((document) => document._id))
    expect(drift.examples.stale).toEqual(projection.slice(0, 100).map((document) => document._id))
  })
})
