// An unchanged TOAST value that nobody knows (contract section 2): with --initial-load never, a row that
// existed before the slot has no state in the connector or in MongoDB. An update that leaves its large
// `description` alone does not carry it in the WAL; the event says so in `unchangedToast` instead of hiding
// it, and the stored document gets the known fields only. Once the column changes, it is known again.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type Connector, type Stack, publishedEvents, startConnector, startStack, waitCaughtUp } from './support/stack.ts'
import { createTask, createWorkspace } from './support/workspace.ts'

/** Random text of 20 kB: it compresses too little to stay in the row, so PostgreSQL moves it to TOAST. */
const largeText = () => Array.from({ length: 20_000 / 32 }, () => crypto.randomUUID().replaceAll('-', '')).join('')

let stack: Stack
let connector: Connector

beforeAll(async () => {
  stack = await startStack()
}, 120_000)
afterAll(async () => {
  await connector?.kill()
  await stack?.stop()
}, 120_000)

test('an update of a row nobody knows names the unchanged TOAST column, and MongoDB keeps the known fields', async () => {
  const { sql } = stack.pg
  const workspaceId = await createWorkspace(sql, 'before the connector')
  const taskId = await createTask(sql, workspaceId, { title: 'old task', description: largeText() })
  connector = await startConnector(stack, { flags: ['--initial-load', 'never'] })

  await sql`update tasks set status = 'in_progress' where id = ${taskId}`
  await waitCaughtUp(stack, connector)
  const [unknown] = (await publishedEvents(stack)).filter((event) => event.taskId === taskId)
  expect(unknown).toMatchObject({ type: 'task.updated', unchangedToast: ['description'], previous: null, changed: [] })
  expect(unknown!.data).toMatchObject({ id: taskId, title: 'old task', status: 'in_progress' })
  expect('description' in unknown!.data).toBe(false)
  const stored = await stack.db.collection('task_events').findOne({ _id: unknown!.id })
  expect(stored).toMatchObject({ unchangedToast: ['description'] })
  const partial = await stack.db.collection('tasks').findOne({ _id: taskId as any })
  expect(partial).toMatchObject({ title: 'old task', status: 'in_progress', lastEventId: unknown!.id })
  expect(partial && 'description' in partial).toBe(false)

  const description = largeText()
  await sql`update tasks set description = ${description} where id = ${taskId}`
  await sql`update tasks set status = 'done' where id = ${taskId}`
  await waitCaughtUp(stack, connector)
  const [, rewritten, later] = (await publishedEvents(stack)).filter((event) => event.taskId === taskId)
  expect(rewritten!.data.description).toBe(description)
  expect(rewritten!.unchangedToast).toBeUndefined()
  // Known from here on: the next update's unchanged TOAST value is filled from the connector's state.
  expect(later!.data).toMatchObject({ status: 'done', description })
  expect(later!.unchangedToast).toBeUndefined()
  expect(await stack.db.collection('tasks').findOne({ _id: taskId as any })).toMatchObject({ status: 'done', description })
}, 120_000)
