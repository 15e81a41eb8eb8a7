// Key changes (contract section 2): an UPDATE that changes a row's `id` is the old id's deletion, then the new
// id's creation, with consecutive ordinals; the old id's document becomes a tombstone. Each scenario is checked
// against a wal2json slot of our own (test/support/verify.ts): the events the contract gives its changes, on
// Pub/Sub and in task_events, field by field, and `tasks`/`workspaces` against the tables.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import type postgres from 'postgres'
import { type Connector, type Stack, publishedEvents, startConnector, startStack, waitCaughtUp } from './support/stack.ts'
import {
  createVerificationSlot,
  expectedChanges,
  historyDifference,
  noStateDifference,
  published,
  publishedContentDifference,
  setDifference,
  stateDifference,
  storedEvents,
} from './support/verify.ts'
import { createTask, createWorkspace, largeText } from './support/workspace.ts'

let stack: Stack
let connector: Connector
// Made before the connector starts (with --initial-load never): a row nobody knows.
let unknownTaskId: string
let unknownWorkspaceId: string

beforeAll(async () => {
  stack = await startStack()
  unknownWorkspaceId = await createWorkspace(stack.pg.sql, 'before the connector')
  unknownTaskId = await createTask(stack.pg.sql, unknownWorkspaceId, { title: 'unknown', description: largeText() })
  connector = await startConnector(stack, { flags: ['--initial-load', 'never'] })
}, 120_000)
afterAll(async () => {
  await connector?.kill()
  await stack?.stop()
}, 120_000)

/**
 * Runs `write` with a verification slot watching, and checks what the connector made of it: each expected event
 * on Pub/Sub and in task_events (and no other event of those transactions), as the contract gives it, and both
 * tables against MongoDB.
 */
async function expectAsContractSays(name: string, write: (sql: postgres.Sql) => Promise<void>) {
  const { sql } = stack.pg
  const slot = `verify_${name}`
  await createVerificationSlot(sql, slot)
  await write(sql)
  await waitCaughtUp(stack, connector)
  const expected = await expectedChanges(sql, slot)
  await sql`select pg_drop_replication_slot(${slot})`
  const [sent, stored] = [await published(stack), await storedEvents(stack.db)]
  const commits = new Set(expected.map((change) => change.id.split('-')[0]))
  const ofScenario = (ids: Iterable<string>) => [...ids].filter((id) => commits.has(id.split('-')[0]))
  const states = { tasks: await stateDifference(sql, stack.db, 'tasks', expected), workspaces: await stateDifference(sql, stack.db, 'workspaces', expected) }
  expect({
    published: setDifference(expected.map((change) => change.id), ofScenario(sent.counts.keys())),
    stored: setDifference(expected.map((change) => change.id), ofScenario(stored.byId.keys())),
    publishedContent: publishedContentDifference(sent, expected).wrong ? publishedContentDifference(sent, expected).examples : [],
    storedContent: historyDifference(stored, expected).wrong ? historyDifference(stored, expected).examples : [],
    states,
  }).toEqual({
    published: setDifference(expected.map((change) => change.id), expected.map((change) => change.id)),
    stored: setDifference(expected.map((change) => change.id), expected.map((change) => change.id)),
    publishedContent: [],
    storedContent: [],
    states: { tasks: noStateDifference(states.tasks), workspaces: noStateDifference(states.workspaces) },
  })
  return expected
}

test("a key changed onto a deleted row's id, from a row nobody knows: the document under the new id is live, the unknown TOAST column named", async () => {
  const { sql } = stack.pg
  const takenId = await createTask(sql, unknownWorkspaceId, { title: 'deleted before' })
  await sql`delete from tasks where id = ${takenId}`
  await waitCaughtUp(stack, connector)
  expect(await stack.db.collection('tasks').findOne({ _id: takenId as any })).toMatchObject({ deleted: true })

  await sql`update tasks set id = ${takenId}, status = 'blocked' where id = ${unknownTaskId}`
  await waitCaughtUp(stack, connector)
  const creation = (await publishedEvents(stack)).findLast((event) => event.taskId === takenId)
  expect(creation).toMatchObject({ type: 'task.created', unchangedToast: ['description'], previous: null })
  const document = await stack.db.collection('tasks').findOne({ _id: takenId as any })
  expect(document).toMatchObject({ title: 'unknown', status: 'blocked', lastEventId: creation!.id })
  expect(document!.deleted).toBeUndefined()

  // Known from here on, as the scenarios below expect every row to be.
  await sql`update tasks set description = ${largeText()} where id = ${takenId}`
  await sql`update workspaces set name = 'known' where id = ${unknownWorkspaceId}`
  await waitCaughtUp(stack, connector)
}, 120_000)


const eventsOf = async (ids: string[]) => (await publishedEvents(stack)).filter((event) => ids.includes(event.id))

test('a key-only update: the old id deleted, then the new id created with the unchanged TOAST value, consecutive ordinals', async () => {
  let [oldId, newId] = ['', crypto.randomUUID()]
  const expected = await expectAsContractSays('key_only', async (sql) => {
    const workspaceId = await createWorkspace(sql, 'key only')
    oldId = await createTask(sql, workspaceId, { title: 'moving', description: largeText() })
    await sql`update tasks set id = ${newId} where id = ${oldId}`
  })
  const [deletion, creation] = expected.slice(-2).map((change) => change.id)
  expect(BigInt(`0x${creation!.split('-')[1]}`) - BigInt(`0x${deletion!.split('-')[1]}`)).toBe(1n)
  const events = await eventsOf([deletion!, creation!])
  expect(events.map((event) => [event.type, event.taskId, event.transition])).toEqual([
    ['task.deleted', oldId, { from: 'todo', to: null }],
    ['task.created', newId, { from: null, to: 'todo' }],
  ])
  expect(events[1]!.data.description).toBe(events[0]!.previous.description)
  expect(await stack.db.collection('tasks').findOne({ _id: oldId as any })).toMatchObject({ deleted: true, title: 'moving' })
}, 120_000)

test('a key and status update: the deletion carries the old status, the creation the new one', async () => {
  const newId = crypto.randomUUID()
  const expected = await expectAsContractSays('key_and_status', async (sql) => {
    const workspaceId = await createWorkspace(sql, 'key and status')
    const oldId = await createTask(sql, workspaceId, { title: 'moving', status: 'in_progress' })
    await sql`update tasks set id = ${newId}, status = 'done' where id = ${oldId}`
  })
  const events = await eventsOf(expected.slice(-2).map((change) => change.id))
  expect(events.map((event) => [event.type, event.transition])).toEqual([
    ['task.deleted', { from: 'in_progress', to: null }],
    ['task.created', { from: null, to: 'done' }],
  ])
  expect(await stack.db.collection('tasks').findOne({ _id: newId as any })).toMatchObject({ status: 'done' })
}, 120_000)

test('a key changed twice in a row, in one transaction and across two, and a workspace key change', async () => {
  const ids = Array.from({ length: 5 }, () => crypto.randomUUID())
  const expected = await expectAsContractSays('key_twice', async (sql) => {
    const workspaceId = await createWorkspace(sql, 'key twice')
    const [first, second] = [await createTask(sql, workspaceId, { description: largeText() }), await createTask(sql, workspaceId)]
    await sql.begin(async (sql) => {
      await sql`update tasks set id = ${ids[0]!} where id = ${first}`
      await sql`update tasks set id = ${ids[1]!}, title = 'twice' where id = ${ids[0]!}`
    })
    await sql`update tasks set id = ${ids[2]!} where id = ${second}`
    await sql`update tasks set id = ${ids[3]!} where id = ${ids[2]!}`
    const emptyWorkspace = await createWorkspace(sql, 'renamed')
    await sql`update workspaces set id = ${ids[4]!} where id = ${emptyWorkspace}`
  })
  expect(expected.filter((change) => change.kind === 'delete').length).toBe(5)
  expect((await stack.db.collection('tasks').findOne({ _id: ids[1] as any }))?.description).toBeString()
}, 120_000)
