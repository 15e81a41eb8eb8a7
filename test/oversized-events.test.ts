// No event stalls the stream (contract section 2, `omitted`): an event over Pub/Sub's 10 MB message limit or
// MongoDB's 16 MiB document limit is written to that sink with its largest values left out and named, logged
// and counted, and the changes after it flow on. The Pub/Sub emulator refuses what Pub/Sub refuses, so on a
// connector that retried such an event for ever this test would wait in vain.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type SseClient, openStream } from './support/sse.ts'
import { type Connector, type Stack, publishedEvents, startConnector, startStack, waitCaughtUp } from './support/stack.ts'
import { createTask, createWorkspace } from './support/workspace.ts'

let stack: Stack
let connector: Connector
let live: SseClient | undefined

beforeAll(async () => {
  stack = await startStack()
}, 120_000)
afterAll(async () => {
  live?.close()
  await connector?.kill()
  await stack?.stop()
}, 120_000)

// 12 MB of text that compresses little: over Pub/Sub's limit alone, and over MongoDB's when an event
// carries it twice (in `data` and in `previous`).
const hugeText = () => Array.from({ length: 12_000_000 / 32 }, () => crypto.randomUUID().replaceAll('-', '')).join('')
const ORDINARY_CHANGES = 100

test('an event too large for a sink reaches it without its largest values, named in omitted, and the stream goes on', async () => {
  const { sql } = stack.pg
  connector = await startConnector(stack)
  const url = `http://127.0.0.1:${connector.port}/v1/api/ws/Stream`
  live = await openStream(url)
  const workspaceId = await createWorkspace(sql)
  const description = hugeText()
  const taskId = await createTask(sql, workspaceId, { title: 'huge', description })
  await waitCaughtUp(stack, connector, 120_000)
  // The update leaves the description alone: `data` takes it from the connector's state, `previous` too.
  await sql`update tasks set status = 'in_progress' where id = ${taskId}`
  await waitCaughtUp(stack, connector, 120_000)
  for (let n = 0; n < ORDINARY_CHANGES; n++) await createTask(sql, workspaceId, { title: `ordinary ${n}` })
  await waitCaughtUp(stack, connector, 120_000)
  expect((await connector.info()).state).toBe('streaming')

  // Pub/Sub: 10 MB a message. The creation leaves out its description; the update both copies of it.
  const published = await publishedEvents(stack)
  expect(published).toHaveLength(1 + 2 + ORDINARY_CHANGES)
  const [created, updated] = published.filter((event) => event.taskId === taskId)
  expect(created).toMatchObject({ type: 'task.created', omitted: { data: ['description'], previous: [] }, data: { id: taskId, title: 'huge' } })
  expect('description' in created!.data).toBe(false)
  expect(updated).toMatchObject({
    type: 'task.updated',
    omitted: { data: ['description'], previous: ['description'] },
    data: { status: 'in_progress' },
    previous: { status: 'todo' },
    transition: { from: 'todo', to: 'in_progress' },
  })
  expect(published.filter((event) => 'omitted' in event)).toHaveLength(2)

  // MongoDB: 16 MiB a document. The creation is whole; the update keeps `data` and leaves out `previous`'s
  // copy of the description, the larger of the two by a hair or their equal (then `previous` goes first).
  const stored = await stack.db.collection('task_events').find({ taskId }).sort({ _id: 1 }).toArray()
  expect(stored.map((event) => event.omitted)).toEqual([undefined, { data: [], previous: ['description'] }])
  expect(stored[0]!.data.description).toBe(description)
  expect(stored[1]!.data.description).toBe(description)
  expect('description' in stored[1]!.previous).toBe(false)
  expect(await stack.db.collection('tasks').findOne({ _id: taskId as any })).toMatchObject({ status: 'in_progress', description })

  // The Stream serves MongoDB's copy, live and from history alike.
  await live.waitForEvents(1 + 2 + ORDINARY_CHANGES, 60_000)
  const history = await openStream(`${url}?since=0000000000000000-00000000`)
  await history.waitForEvents(1 + 2 + ORDINARY_CHANGES, 60_000)
  history.close()
  for (const stream of [live, history]) {
    const [liveCreated, liveUpdated] = stream.events.filter((event) => event.data.taskId === taskId).map((event) => event.data)
    expect(liveCreated!.omitted).toBeUndefined()
    expect(liveCreated!.data.description).toBe(description)
    expect(liveUpdated!.omitted).toEqual({ data: [], previous: ['description'] })
    expect(liveUpdated!.data.description).toBe(description)
  }
  expect(history.events.map((event) => event.id)).toEqual(live.events.map((event) => event.id))

  // Logged once an event, and counted by sink.
  const lines = connector.log().split('\n').filter((line) => line.includes('is too large: written to'))
  expect(lines).toHaveLength(2)
  expect(lines[1]).toContain('to pubsub (over its 10,000,000 bytes) without data.description, previous.description; to mongo (over its 16,777,216 bytes) without previous.description')
  const metrics = await (await fetch(`http://127.0.0.1:${connector.port}/metrics`)).text()
  expect(metrics).toContain('task_connector_events_omitted_total{sink="pubsub"} 2')
  expect(metrics).toContain('task_connector_events_omitted_total{sink="mongo"} 1')
}, 300_000)
