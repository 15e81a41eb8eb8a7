// extract-tasks end to end against real PostgreSQL, FerretDB and the Pub/Sub emulator; twice, with FerretDB
// on each of its backends, so that nothing depends on one server's quirks.

import { describe, expect, test } from 'bun:test'
import type { FerretDbBackend } from './support/ferretdb.ts'
import { publishedEvents, waitCaughtUp } from './support/stack.ts'
import { sharedStack } from './support/shared-stack.ts'
import { createTask, createWorkspace } from './support/workspace.ts'

const BACKENDS: FerretDbBackend[] = ['sqlite', 'postgresql']

for (const backend of BACKENDS) describe(`extract-tasks (FerretDB on ${backend})`, () => {
  const shared = sharedStack({ backend })

  const eventsOf = async (taskId: string) => (await publishedEvents(shared.stack)).filter((event) => event.taskId === taskId)

  test('/info reports the slot streaming', async () => {
    const info = await shared.connector.info()
    expect(info).toMatchObject({ name: 'tag-connector', slot: 'task_connector', state: 'streaming' })
    expect(info.confirmedLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
  })

  // The page is imported as text and embedded: scripts/test runs this file through the compiled binary too.
  test('the status page is served, whole, from the program itself', async () => {
    const { STATUS_PAGE } = await import('../src/http/status-page.ts')
    const response = await fetch(`http://127.0.0.1:${shared.connector.port}/`)
    expect(response.headers.get('content-security-policy')).toStartWith("default-src 'none'")
    expect(await response.text()).toBe(STATUS_PAGE)
  })

  test('the whole life cycle of a task becomes events, history and state', async () => {
    const { sql } = shared.stack.pg
    const workspaceId = await createWorkspace(sql, 'life')
    const description = Array.from({ length: 3000 }, (_, i) => (i * 7919).toString(36)).join(' ')
    const taskId = await createTask(sql, workspaceId, { title: 'plan', description, labels: ['a', 'b'], metadata: { size: 3 } })
    await sql`update tasks set status = 'in_progress' where id = ${taskId}`
    await sql`update tasks set assignee_id = ${crypto.randomUUID()} where id = ${taskId}`
    await sql`update tasks set status = 'done', title = 'planned' where id = ${taskId}`
    await sql`delete from tasks where id = ${taskId}`
    await waitCaughtUp(shared.stack, shared.connector)

    const events = await eventsOf(taskId)
    expect(events.map((event) => event.type)).toEqual(['task.created', 'task.updated', 'task.updated', 'task.updated', 'task.deleted'])
    expect(events.map((event) => event.transition ?? null)).toEqual([
      { from: null, to: 'todo' },
      { from: 'todo', to: 'in_progress' },
      null,
      { from: 'in_progress', to: 'done' },
      { from: 'done', to: null },
    ])
    // The description was never re-logged after the insert (an unchanged TOAST value): it is filled in.
    for (const event of events.slice(0, 4)) expect(event.data.description).toBe(description)
    expect(events[2]!.changed).toEqual(['assigneeId'])
    expect(events[3]!.changed.sort()).toEqual(['status', 'title'])
    expect(events[4]!.previous.title).toBe('planned')
    expect(new Set(events.map((event) => event.id)).size).toBe(5)
    expect([...events.map((event) => event.id)].sort()).toEqual(events.map((event) => event.id))
    const [message] = (await shared.stack.pubsub.messages('taskTopic')).filter((published) => published.attributes.eventId === events[0]!.id)
    expect(message!.orderingKey).toBe(taskId)
    expect(message!.attributes).toMatchObject({ type: 'task.created', source: 'cdc', taskId, workspaceId, lsn: events[0]!.lsn })

    const history = await shared.stack.db.collection('task_events').find({ taskId }).sort({ _id: 1 }).toArray()
    expect(history.map((document) => document._id)).toEqual(events.map((event) => event.id))
    expect(history[0]!.commitTime).toBeInstanceOf(Date)
    expect(history[0]!.data.createdAt).toBeInstanceOf(Date)
    const state = await shared.stack.db.collection('tasks').findOne({ _id: taskId as any })
    expect(state).toMatchObject({ deleted: true, lastEventId: events[4]!.id, title: 'planned' })
  })

  test('a multi-row insert and a truncate', async () => {
    const { sql } = shared.stack.pg
    const workspaceId = await createWorkspace(sql, 'bulk')
    const copy = await sql`copy tasks (id, workspace_id, title) from stdin`.writable()
    const ids = Array.from({ length: 20 }, () => crypto.randomUUID())
    copy.write(ids.map((id) => `${id}\t${workspaceId}\tcopied\n`).join(''))
    await new Promise((resolve) => copy.end(resolve))
    await sql`truncate tasks`
    await waitCaughtUp(shared.stack, shared.connector)

    const events = await publishedEvents(shared.stack)
    const created = events.filter((event) => event.type === 'task.created' && ids.includes(event.taskId))
    expect(created).toHaveLength(20)
    expect(new Set(created.map((event) => event.lsn)).size).toBe(1)
    expect(created.map((event) => Number.parseInt(event.id.split("-")[1], 16)).sort((a, b) => a - b)).toEqual([...Array(20).keys()])
    expect(events.filter((event) => event.type === 'tasks.truncated')).toHaveLength(1)
    expect(await shared.stack.db.collection('tasks').countDocuments({ deleted: { $ne: true } })).toBe(0)
  })

  test('the checkpoint follows what is durable and published', async () => {
    const checkpoint = await shared.stack.db.collection('checkpoints').findOne({ _id: 'task_connector' as any })
    expect(checkpoint?.initialLoad).toBe('done')
    expect(checkpoint?.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
    expect(checkpoint?.updatedAt).toBeInstanceOf(Date)
  })
})
