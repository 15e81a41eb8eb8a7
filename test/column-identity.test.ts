// A column is known by its identity (attnum), not its name, when an update that left it out is decoded with a
// catalog reading taken after later migrations (a backlog: the connector was down meanwhile). A column dropped
// before the update and added again after it did not exist then: it is not filled from the row's old state, so the
// event and the document lack it, as PostgreSQL has NULL. A large column retyped after the update (text to integer)
// did exist: the update left it unchanged, and it is filled from the row's state, not taken for one added since.

import { expect, test } from 'bun:test'
import { sharedStack } from './support/shared-stack.ts'
import { publishedEvents, startConnector, waitCaughtUp } from './support/stack.ts'
import { createTask, createWorkspace, largeText } from './support/workspace.ts'

const shared = sharedStack()

/** Streams what is committed so far, then stops: what `whileDown` commits becomes a backlog the next start reads. */
async function withBacklog(whileDown: () => Promise<void>) {
  await waitCaughtUp(shared.stack, shared.connector)
  expect(await shared.connector.kill()).toBe(0)
  await whileDown()
  shared.connector = await startConnector(shared.stack)
  await waitCaughtUp(shared.stack, shared.connector)
}

const eventsOf = async (taskId: string) => (await publishedEvents(shared.stack)).filter((event) => event.taskId === taskId)
const stateOf = (taskId: string) => shared.stack.db.collection('tasks').findOne({ _id: taskId as any })

test('a column dropped before an update and added again after it is not filled in from the old state', async () => {
  const { sql } = shared.stack.pg
  await sql`alter table tasks add column notes text`
  const taskId = await createTask(sql, await createWorkspace(sql, 'drop, update, add'), { notes: largeText() })
  await withBacklog(async () => {
    await sql`alter table tasks drop column notes`
    await sql`update tasks set status = 'done' where id = ${taskId}`
    await sql`alter table tasks add column notes text`
  })
  const [, updated] = await eventsOf(taskId)
  expect(updated).toMatchObject({ type: 'task.updated', data: { status: 'done' } })
  expect(updated!.data).not.toHaveProperty('notes')
  expect(updated!.unchangedToast).toBeUndefined()
  const [row] = await sql`select notes from tasks where id = ${taskId}`
  expect(row!.notes).toBeNull()
  expect(await stateOf(taskId)).not.toHaveProperty('notes')
  await sql`alter table tasks drop column notes`
}, 300_000)

test('a large column retyped from text to integer after an update is still that update\'s unchanged value', async () => {
  const { sql } = shared.stack.pg
  // `flag` after it, so that the update's row reaches past the retyped column.
  await sql`alter table tasks add column summary text, add column flag boolean not null default false`
  const summary = largeText()
  const taskId = await createTask(sql, await createWorkspace(sql, 'update, retype'), { summary })
  await withBacklog(async () => {
    await sql`update tasks set status = 'done' where id = ${taskId}`
    await sql`alter table tasks alter column summary type integer using length(summary)`
  })
  const [, updated] = await eventsOf(taskId)
  expect(updated).toMatchObject({ type: 'task.updated', data: { status: 'done', summary } })
  expect(updated!.unchangedToast).toBeUndefined()
  expect(await stateOf(taskId)).toMatchObject({ status: 'done', summary })
}, 300_000)
