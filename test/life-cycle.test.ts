// Life-cycle timing end to end (contract sections 2 and 4), on a cluster that records commit timestamps: an
// exact script of status changes, one transaction each with known pauses between them, through two crashes
// (one with MongoDB ahead of the replay, one with Pub/Sub ahead of it); a task of the initial load; the
// Snapshot and the metric. Every figure is checked against the events' own commit times, and those against
// PostgreSQL's (pg_xact_commit_timestamp).

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { waitFor } from './support/ports.ts'
import { COMMIT_TIMESTAMPS, commitTimeOf } from './support/postgres.ts'
import { type Connector, type Stack, TOPIC, startConnector, startStack, waitCaughtUp } from './support/stack.ts'
import { createTask, createWorkspace } from './support/workspace.ts'

const START_MS = 120_000
const TEST_MS = 180_000

let stack: Stack
let connector: Connector
let workspaceId: string
// A task that is there before the slot: the initial load brings it, in a status entered who knows when.
let loadedId: string

beforeAll(async () => {
  stack = await startStack(COMMIT_TIMESTAMPS)
  workspaceId = await createWorkspace(stack.pg.sql, 'life cycle')
  loadedId = await createTask(stack.pg.sql, workspaceId, { status: 'in_progress' })
  connector = await startConnector(stack)
}, START_MS)
afterAll(async () => {
  await connector?.kill()
  await stack?.stop()
}, START_MS)

const stored = async (taskId: string) => stack.db.collection('task_events').find({ taskId }).sort({ _id: 1 }).toArray()
const documentOf = async (taskId: string) => stack.db.collection('tasks').findOne({ _id: taskId as never })
const messagesOf = async (taskId: string) => (await stack.pubsub.messages(TOPIC)).filter((message) => message.attributes.taskId === taskId)
const ms = (iso: string) => Date.parse(iso)

async function snapshotTask(taskId: string) {
  const response = await fetch(`http://127.0.0.1:${connector.port}/v1/api/ws/Snapshot?workspace=${workspaceId}`)
  return ((await response.json()) as { tasks: Record<string, unknown>[] }).tasks.find((task) => task.id === taskId)
}

describe('life-cycle timing', () => {
  test('an exact script through two crashes: every figure follows from the commit times, which are PostgreSQL\'s, and none counts twice', async () => {
    const { sql } = stack.pg
    const taskId = await createTask(sql, workspaceId, { status: 'todo' })
    const move = (status: string) => sql`update tasks set status = ${status}, updated_at = now() where id = ${taskId}`
    const pauses = [300, 500, 200, 400, 300]
    await Bun.sleep(pauses[0]!)
    await move('in_progress')
    await waitCaughtUp(stack, connector)

    // Crash 1: MongoDB frozen, so Pub/Sub has the next change while MongoDB does not; the restart builds it again.
    await Bun.sleep(pauses[1]!)
    stack.mongo.freeze()
    const published = (await messagesOf(taskId)).length
    await move('blocked')
    await waitFor('Pub/Sub to have the third change', async () => (await messagesOf(taskId)).length > published, 60_000).finally(async () => {
      await connector.kill('SIGKILL')
      stack.mongo.thaw()
    })
    connector = await startConnector(stack)
    await waitCaughtUp(stack, connector)

    // Crash 2: Pub/Sub down, so MongoDB holds the next change (row and history) while the slot is not
    // confirmed past it; the restart replays it with the row already ahead, and times the change after it
    // from there.
    await Bun.sleep(pauses[2]!)
    await stack.pubsub.pause()
    await move('in_progress')
    await waitFor('MongoDB to hold the fourth change', async () => (await stored(taskId)).length === 4 && (await documentOf(taskId))?.status === 'in_progress', 60_000).finally(async () => {
      await connector.kill('SIGKILL')
      await stack.pubsub.resume()
    })
    connector = await startConnector(stack)
    await waitCaughtUp(stack, connector)
    await Bun.sleep(pauses[3]!)
    await move('done')
    await waitCaughtUp(stack, connector)
    const live = await snapshotTask(taskId)

    await Bun.sleep(pauses[4]!)
    await sql`delete from tasks where id = ${taskId}`
    await waitCaughtUp(stack, connector)

    const events = await stored(taskId)
    const times = events.map((event) => (event.commitTime as Date).toISOString())
    expect(events.map((event) => event.type)).toEqual(['task.created', 'task.updated', 'task.updated', 'task.updated', 'task.updated', 'task.deleted'])
    // The events' commit times are PostgreSQL's, and the pauses lie between them.
    for (const [index, event] of events.entries()) expect(times[index]).toBe(await commitTimeOf(sql, event.xid))
    for (const [index, pause] of pauses.entries()) expect(ms(times[index + 1]!) - ms(times[index]!)).toBeGreaterThanOrEqual(pause)

    const statuses = ['todo', 'in_progress', 'blocked', 'in_progress', 'done', null]
    expect(events.map((event) => event.transition)).toEqual(statuses.map((to, index) => ({
      from: index ? statuses[index - 1] : null,
      to,
      fromSince: index ? new Date(times[index - 1]!) : null,
      inFromMs: index ? ms(times[index]!) - ms(times[index - 1]!) : null,
    })))
    // In the events' JSON (Pub/Sub), fromSince is the commit time as the event before showed it; each copy
    // of an event, the replayed ones among them, is the same as the first.
    const copies = new Map<string, Record<string, unknown>[]>()
    for (const message of await messagesOf(taskId)) copies.set(message.attributes.eventId!, [...(copies.get(message.attributes.eventId!) ?? []), JSON.parse(message.data.toString())])
    expect([...copies.keys()].sort()).toEqual(events.map((event) => event._id as unknown as string))
    for (const [, [first, ...again]] of copies) for (const copy of again) expect(copy).toEqual(first!)
    expect([...copies.values()].some((texts) => texts.length > 1)).toBe(true)
    const fifth = copies.get(events[4]!._id as unknown as string)![0]!
    expect(fifth.transition).toEqual({ from: 'in_progress', to: 'done', fromSince: times[3], inFromMs: ms(times[4]!) - ms(times[3]!) })

    const gap = (index: number) => ms(times[index]!) - ms(times[index - 1]!)
    const visits = { todo: 1, in_progress: 2, blocked: 1, done: 1 }
    const whileLive = { todo: gap(1), in_progress: gap(2) + gap(4), blocked: gap(3) }
    // The Snapshot serves the document as it was stored then; the tombstone keeps the totals, its last visit closed.
    expect(live).toMatchObject({ status: 'done', statusSince: times[4], timeInStatus: whileLive, statusVisits: visits })
    expect(await documentOf(taskId)).toMatchObject({ deleted: true, statusSince: null, timeInStatus: { ...whileLive, done: gap(5) }, statusVisits: visits })

    const metrics = await (await fetch(`http://127.0.0.1:${connector.port}/metrics`)).text()
    expect(metrics).toMatch(/^task_connector_status_seconds_count\{status="done"\} 1$/m)
    expect(metrics).toMatch(/^task_connector_status_seconds_bucket\{le="60",status="done"\} 1$/m)
  }, TEST_MS)

  test('a task of the initial load has no timing until it moves, and its totals start there', async () => {
    const { sql } = stack.pg
    const loaded = await documentOf(loadedId)
    expect(loaded).toMatchObject({ status: 'in_progress', statusSince: null, timeInStatus: {}, statusVisits: {} })
    expect(await snapshotTask(loadedId)).toMatchObject({ statusSince: null, timeInStatus: {}, statusVisits: {} })
    await sql`update tasks set status = 'done' where id = ${loadedId}`
    await Bun.sleep(200)
    await sql`update tasks set status = 'cancelled' where id = ${loadedId}`
    await waitCaughtUp(stack, connector)

    const [snapshot, ...moves] = await stored(loadedId)
    expect(snapshot).toMatchObject({ type: 'task.snapshot', source: 'initial' })
    expect(snapshot!.transition).toBeUndefined()
    const [done, cancelled] = moves.map((event) => (event.commitTime as Date).getTime())
    expect(moves.map((event) => event.transition)).toEqual([
      { from: 'in_progress', to: 'done', fromSince: null, inFromMs: null },
      { from: 'done', to: 'cancelled', fromSince: new Date(done!), inFromMs: cancelled! - done! },
    ])
    expect(await documentOf(loadedId)).toMatchObject({
      status: 'cancelled', statusSince: new Date(cancelled!), timeInStatus: { done: cancelled! - done! }, statusVisits: { done: 1, cancelled: 1 },
    })
  }, TEST_MS)

  test('a reload keeps the life cycle of a task it finds in the same status, and leaves statusSince unknown for one that moved unseen', async () => {
    const { sql } = stack.pg
    const movedId = await createTask(sql, workspaceId, { status: 'todo' })
    await Bun.sleep(100)
    await sql`update tasks set status = 'in_progress' where id = ${movedId}`
    await waitCaughtUp(stack, connector)
    const [moved, loaded] = [await documentOf(movedId), await documentOf(loadedId)]
    expect(moved).toMatchObject({ statusSince: expect.any(Date), statusVisits: { todo: 1, in_progress: 1 } })

    // A record of an unfinished load: the next start drops the slot and loads again, and never streams the
    // change made meanwhile.
    await connector.kill()
    await sql`update tasks set status = 'blocked' where id = ${movedId}`
    await stack.db.collection('checkpoints').updateOne({ _id: 'task_connector' as never }, { $set: { initialLoad: 'running' } })
    connector = await startConnector(stack)
    await waitCaughtUp(stack, connector)

    expect(await documentOf(movedId)).toMatchObject({ status: 'blocked', statusSince: null, timeInStatus: moved!.timeInStatus, statusVisits: moved!.statusVisits })
    const reloaded = await documentOf(loadedId)
    expect(reloaded!.lastEventId > loaded!.lastEventId).toBe(true)
    expect(reloaded).toMatchObject({ statusSince: loaded!.statusSince, timeInStatus: loaded!.timeInStatus, statusVisits: loaded!.statusVisits })
  }, TEST_MS)
})
