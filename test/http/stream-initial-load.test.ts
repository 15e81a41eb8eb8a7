// The Stream during an initial load: a client that connects while the load runs gets the load's events live,
// from the moment it connected to the last, in id order, none twice, and the changes streamed after them; a
// Snapshot then, before the first checkpoint, names the start of the Stream as its lastEventId.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { waitFor } from '../support/ports.ts'
import { type SseClient, openStream } from '../support/sse.ts'
import { type Connector, type Stack, startConnector, startStack, waitInitialLoadUnderWay } from '../support/stack.ts'
import { createTask, createWorkspace, insertTasks } from '../support/workspace.ts'

// Enough that the load is still running when the client connects (FerretDB takes some 2,000 a second).
const EXISTING_TASKS = 30_000
const CONNECT_AFTER_LOADED = 2_000

let stack: Stack
let connector: Connector | undefined
let client: SseClient | undefined

beforeAll(async () => {
  stack = await startStack()
}, 120_000)
afterAll(async () => {
  client?.close()
  await connector?.kill()
  await stack?.stop()
}, 120_000)

test('a client connected during the initial load gets the rest of the load live, then the streamed changes', async () => {
  const { sql } = stack.pg
  const workspaceId = await createWorkspace(sql, 'loaded')
  await insertTasks(sql, workspaceId, EXISTING_TASKS)
  connector = await startConnector(stack, { until: 'answering' })
  await waitInitialLoadUnderWay(stack, CONNECT_AFTER_LOADED, 120_000)
  const sse = (client = await openStream(`http://127.0.0.1:${connector.port}/v1/api/ws/Stream?types=task.snapshot,task.created`))
  expect(sse.status).toBe(200)
  const loadedWhenConnected = await stack.db.collection('tasks').estimatedDocumentCount()
  expect(loadedWhenConnected).toBeLessThan(EXISTING_TASKS)
  // Before the first checkpoint the Snapshot says to read the Stream from its start.
  const snapshot = (await (await fetch(`http://127.0.0.1:${connector.port}/v1/api/ws/Snapshot?workspace=${workspaceId}`)).json()) as { lsn: string | null; lastEventId: string }
  expect(snapshot).toMatchObject({ lsn: null, lastEventId: '0000000000000000-00000000' })

  await waitFor('the connector to stream after its load', async () => (await connector!.info()).state === 'streaming', 300_000, 200)
  const created = await createTask(sql, workspaceId, { title: 'after the load' })
  await waitFor(`task ${created} on the stream`, () => sse.events.some((event) => event.data.taskId === created), 60_000, 50)

  // Every task the load made durable after the client connected, and nothing before: a suffix of the load's ids.
  const snapshots = sse.events.filter((event) => event.event === 'task.snapshot')
  expect(snapshots.length).toBeGreaterThanOrEqual(EXISTING_TASKS - loadedWhenConnected)
  const point = snapshots[0]!.id.split('-')[0]!
  const loaded = await stack.db.collection<{ _id: string }>('task_events')
    .find({ _id: { $gte: `${point}-`, $lte: `${point}-G` }, type: 'task.snapshot' }, { projection: { _id: 1 } }).toArray()
  const loadIds = loaded.map(({ _id }) => _id).sort()
  expect(loadIds).toHaveLength(EXISTING_TASKS)
  expect(snapshots.map((event) => event.id)).toEqual(loadIds.slice(loadIds.indexOf(snapshots[0]!.id)))
  const last = sse.events.at(-1)!
  expect(last).toMatchObject({ event: 'task.created', data: { taskId: created } })
  expect(last.id > snapshots.at(-1)!.id).toBe(true)
}, 600_000)
