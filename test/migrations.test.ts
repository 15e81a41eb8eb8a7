// Schema changes while streaming (issue 10): with one connector running throughout, columns are added, dropped,
// renamed and retyped, and every event and MongoDB document is typed as the contract says from the change on:
// timestamps ISO-8601 strings in events and BSON dates in MongoDB, numeric as exact decimal text, booleans as
// booleans; a dropped column leaves the events and the stored document; a large description that PostgreSQL does
// not re-log (an unchanged TOAST value) is still filled in across each migration. No restart, no change lost.

import { expect, test } from 'bun:test'
import { publishedEvents, startConnector, waitCaughtUp } from './support/stack.ts'
import { sharedStack } from './support/shared-stack.ts'
import { createTask, createWorkspace, largeText } from './support/workspace.ts'

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

const shared = sharedStack()

test('columns added, dropped, renamed and retyped while streaming are typed from their first change, and nothing is lost', async () => {
  const { sql } = shared.stack.pg
  const workspaceId = await createWorkspace(sql, 'migrated')
  const description = largeText()
  const old = await createTask(sql, workspaceId, { title: 'before', description, due_at: '2026-12-24 18:00:00+00' })
  await waitCaughtUp(shared.stack, shared.connector)
  const eventsOf = async (taskId: string) => (await publishedEvents(shared.stack)).filter((event) => event.taskId === taskId)
  const stateOf = (taskId: string) => shared.stack.db.collection('tasks').findOne({ _id: taskId as any })
  const storedEvent = (id: string) => shared.stack.db.collection('task_events').findOne({ _id: id as any })

  // 1. New columns: a timestamptz, a numeric and a boolean with a default.
  await sql`alter table tasks add column started_at timestamptz, add column estimate numeric(8,2), add column archived boolean not null default false`
  const fresh = await createTask(sql, workspaceId, { title: 'after', started_at: '2026-12-01 09:30:00.123+00', estimate: '3.50' })
  // The old row's description is not re-logged: its UPDATE lacks a column, and the connector must find out why.
  await sql`update tasks set started_at = '2026-12-02 10:00:00+00', estimate = 1.25, archived = true where id = ${old}`
  await waitCaughtUp(shared.stack, shared.connector)

  const [created] = await eventsOf(fresh)
  expect(created!.data).toMatchObject({ startedAt: '2026-12-01T09:30:00.123Z', estimate: '3.50', archived: false })
  const [, added] = await eventsOf(old)
  expect(added!.data).toMatchObject({ startedAt: '2026-12-02T10:00:00.000Z', estimate: '1.25', archived: true, description })
  expect(added!.unchangedToast).toBeUndefined()
  expect(added!.changed.sort()).toEqual(['archived', 'estimate', 'startedAt'])
  for (const document of [await stateOf(fresh), (await storedEvent(created!.id))!.data]) {
    expect(document.startedAt).toEqual(new Date('2026-12-01T09:30:00.123Z'))
    expect(document).toMatchObject({ estimate: '3.50', archived: false })
  }
  expect(await stateOf(old)).toMatchObject({ startedAt: new Date('2026-12-02T10:00:00Z'), estimate: '1.25', archived: true, description })
  expect((await storedEvent(added!.id))!.previous.dueAt).toEqual(new Date('2026-12-24T18:00:00Z'))

  // 2. A dropped column (labels, which could be stored out of line too): gone from later events and documents.
  await sql`alter table tasks drop column labels`
  await sql`update tasks set status = 'in_progress' where id = ${old}`
  await sql`update tasks set status = 'blocked' where id = ${fresh}`
  await waitCaughtUp(shared.stack, shared.connector)
  const [, , dropped] = await eventsOf(old)
  expect(dropped!.data).toMatchObject({ status: 'in_progress', description, startedAt: '2026-12-02T10:00:00.000Z' })
  expect(dropped!.unchangedToast).toBeUndefined()
  expect('labels' in dropped!.data).toBe(false)
  for (const taskId of [old, fresh]) expect(await stateOf(taskId)).not.toHaveProperty('labels')
  expect(await stateOf(old)).toMatchObject({ status: 'in_progress', description })

  // 3. A renamed column: under its new camelCase name, still a timestamp.
  await sql`alter table tasks rename column due_at to deadline_at`
  await sql`update tasks set status = 'done' where id = ${old}`
  await sql`update tasks set deadline_at = '2027-01-15 12:00:00+00' where id = ${fresh}`
  await waitCaughtUp(shared.stack, shared.connector)
  const [, , , renamed] = await eventsOf(old)
  expect(renamed!.data).toMatchObject({ deadlineAt: '2026-12-24T18:00:00.000Z', description, status: 'done' })
  expect('dueAt' in renamed!.data).toBe(false)
  const oldState = await stateOf(old)
  expect(oldState!.deadlineAt).toEqual(new Date('2026-12-24T18:00:00Z'))
  expect(oldState).not.toHaveProperty('dueAt')
  expect((await stateOf(fresh))!.deadlineAt).toEqual(new Date('2027-01-15T12:00:00Z'))

  // 4. A retyped column: priority integer → numeric, exact decimal text from its first change on.
  const [before] = await eventsOf(fresh)
  expect(before!.data.priority).toBe(0)
  await sql`alter table tasks alter column priority type numeric using priority::numeric`
  await sql`update tasks set priority = 2.50 where id = ${fresh}`
  await sql`update tasks set title = 'retyped' where id = ${old}`
  await waitCaughtUp(shared.stack, shared.connector)
  const retyped = (await eventsOf(fresh)).at(-1)!
  expect(retyped.data).toMatchObject({ priority: '2.50', startedAt: '2026-12-01T09:30:00.123Z' })
  expect(await stateOf(fresh)).toMatchObject({ priority: '2.50', startedAt: new Date('2026-12-01T09:30:00.123Z') })
  expect((await eventsOf(old)).at(-1)!.data).toMatchObject({ title: 'retyped', priority: '0', description })

  // Nothing lost or doubled, in order, every timestamp an ISO string; the same process throughout.
  const all = [...(await eventsOf(old)), ...(await eventsOf(fresh))]
  expect((await eventsOf(old)).map((event) => event.type)).toEqual(['task.created', ...Array(4).fill('task.updated')])
  expect((await eventsOf(fresh)).map((event) => event.type)).toEqual(['task.created', ...Array(3).fill('task.updated')])
  for (const event of all) for (const key of ['createdAt', 'updatedAt']) expect(event.data[key]).toMatch(ISO_UTC)
  expect(await shared.stack.db.collection('task_events').countDocuments({ taskId: { $in: [old, fresh] } })).toBe(all.length)
  expect(shared.connector.process.exitCode).toBeNull()
  expect(shared.connector.log()).not.toContain('reconnecting')
}, 180_000)

test('a migration inside the transaction that updates, and updates that leave a large value alone, are each decided exactly, one catalog reading for many', async () => {
  const { sql } = shared.stack.pg
  const workspaceId = await createWorkspace(sql, 'same transaction')
  const description = largeText()
  await sql`alter table tasks add column notes text`
  const task = await createTask(sql, workspaceId, { title: 'noted', description, notes: largeText() })
  await waitCaughtUp(shared.stack, shared.connector)
  const eventsOf = async () => (await publishedEvents(shared.stack)).filter((event) => event.taskId === task)
  expect((await eventsOf())[0]!.data.notes).toHaveLength(20_000)

  // The column goes in the very transaction that updates the row: its UPDATE lacks both large columns, and only
  // a list read after that transaction tells the dropped one from the one left alone.
  await sql.begin(async (tx) => {
    await tx`alter table tasks drop column notes`
    await tx`update tasks set status = 'in_progress' where id = ${task}`
  })
  await waitCaughtUp(shared.stack, shared.connector)
  const [, dropped] = await eventsOf()
  expect(dropped!.data).toMatchObject({ status: 'in_progress', description })
  expect('notes' in dropped!.data).toBe(false)
  expect(dropped!.unchangedToast).toBeUndefined()
  expect(await shared.stack.db.collection('tasks').findOne({ _id: task as any })).not.toHaveProperty('notes')

  // Updates that leave the description alone, committed while the connector is frozen: the first it meets sends
  // it to the catalog once, and that reading covers every one committed before it.
  const UPDATES = 200
  const readsBefore = (await shared.connector.info()).catalogReads as number
  shared.connector.process.kill('SIGSTOP')
  try {
    for (let i = 0; i < UPDATES; i++) await sql`update tasks set priority = ${i} where id = ${task}`
  } finally {
    shared.connector.process.kill('SIGCONT')
  }
  await waitCaughtUp(shared.stack, shared.connector)
  const updates = (await eventsOf()).slice(2)
  expect(updates.map((event) => event.data.priority)).toEqual(Array.from({ length: UPDATES }, (_, i) => String(i)))
  for (const event of updates) {
    expect(event.data.description).toBe(description)
    expect(event.unchangedToast).toBeUndefined()
  }
  const reads = ((await shared.connector.info()).catalogReads as number) - readsBefore
  // One, or two when the first reading came within the microseconds between a commit and its visibility.
  expect(reads).toBeGreaterThanOrEqual(1)
  expect(reads).toBeLessThanOrEqual(2)

  // The same after a restart: the reading every stream starts with covers the whole backlog.
  expect(await shared.connector.kill()).toBe(0)
  for (let i = 0; i < UPDATES; i++) await sql`update tasks set title = ${`backlog ${i}`} where id = ${task}`
  shared.connector = await startConnector(shared.stack)
  await waitCaughtUp(shared.stack, shared.connector)
  const backlog = (await eventsOf()).filter((event) => String(event.data.title).startsWith('backlog '))
  expect(backlog).toHaveLength(UPDATES)
  for (const event of backlog) expect(event.data.description).toBe(description)
  expect((await shared.connector.info()).catalogReads).toBe(1)
}, 180_000)

test('an initial load that starts after the migrations reads the columns the tables have then, typed alike', async () => {
  const { sql } = shared.stack.pg
  expect(await shared.connector.kill()).toBe(0)
  // A slot lost: the next start creates it again and loads the tables as they are now.
  await sql`select pg_drop_replication_slot('task_connector')`
  const [row] = await sql`select id from tasks where title = 'retyped'`
  shared.connector = await startConnector(shared.stack)
  await waitCaughtUp(shared.stack, shared.connector)
  const loaded = (await publishedEvents(shared.stack)).filter((event) => event.taskId === row!.id && event.type === 'task.snapshot')
  expect(loaded).toHaveLength(1)
  expect(loaded[0]!.data).toMatchObject({ startedAt: '2026-12-02T10:00:00.000Z', estimate: '1.25', archived: true, priority: '0', deadlineAt: '2026-12-24T18:00:00.000Z' })
  expect(Object.keys(loaded[0]!.data)).not.toContain('labels')
  const stored = await shared.stack.db.collection('task_events').findOne({ _id: loaded[0]!.id as any })
  expect(stored!.data.startedAt).toEqual(new Date('2026-12-02T10:00:00Z'))
  expect(stored!.data.deadlineAt).toEqual(new Date('2026-12-24T18:00:00Z'))
  const state = await shared.stack.db.collection('tasks').findOne({ _id: row!.id })
  expect(state).toMatchObject({ lastEventId: loaded[0]!.id, startedAt: new Date('2026-12-02T10:00:00Z'), estimate: '1.25' })
}, 180_000)
