// A reload seen from the Stream and the Snapshot (contract sections 2 and 5): the slot is dropped while the
// connector is stopped, rows are deleted and changed, and the connector starts again with a new slot and
// loads the tables. A reader that resumes from its last event, and a Snapshot taken in the middle of the load
// followed by the Stream from its lastEventId, both end equal to the tables: the load deletes, with events of
// source `initial`, the stored rows the tables no longer have.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Document } from 'mongodb'
import { waitFor } from '../support/ports.ts'
import { applyEvents, projectionOf, rowsById, tableRows } from '../support/projection.ts'
import { followStream, openStream } from '../support/sse.ts'
import { type Connector, type Stack, publishedEvents, startConnector, startStack, waitCaughtUp } from '../support/stack.ts'
import { createWorkspace, insertTasks } from '../support/workspace.ts'

// Enough that the reload takes seconds, so that a Snapshot lands in its middle (FerretDB takes some 2,000 a second).
const TASKS = 20_000
const LOADED_BEFORE_SNAPSHOT = 1_000
const STREAM = '/v1/api/ws/Stream'
const ZERO = '0000000000000000-00000000'

let stack: Stack
let connector: Connector | undefined

beforeAll(async () => {
  stack = await startStack()
}, 120_000)
afterAll(async () => {
  await connector?.kill()
  await stack?.stop()
}, 120_000)

const lastPublished = async () => (await publishedEvents(stack)).map((event) => event.id as string).sort().at(-1)!

test('after a reload, a resumed reader and a Snapshot taken mid-load plus the Stream both equal the tables', async () => {
  const { sql } = stack.pg
  const kept = await createWorkspace(sql, 'kept')
  const dropped = await createWorkspace(sql, 'dropped')
  await insertTasks(sql, kept, TASKS)
  await insertTasks(sql, dropped, 20)
  connector = await startConnector(stack, { timeoutMs: 300_000 })
  const base = `http://127.0.0.1:${connector.port}`
  const reader = followStream([base], STREAM, ZERO)
  await waitCaughtUp(stack, connector, 300_000)
  let last = await lastPublished()
  await waitFor('the reader at the end of the stream', () => reader.events.at(-1)?.id === last, 120_000, 50)

  // Stopped; the slot lost; rows deleted and changed meanwhile.
  await connector.kill()
  await sql`select pg_drop_replication_slot('task_connector')`
  await sql`delete from workspaces where id = ${dropped}`
  await sql`delete from tasks where id in (select id from tasks where workspace_id = ${kept} order by id limit 100)`
  await sql`update tasks set status = 'done', title = 'changed while stopped' where id in (select id from tasks where workspace_id = ${kept} order by id desc limit 100)`

  connector = await startConnector(stack, { until: 'answering' })
  const restarted = `http://127.0.0.1:${connector.port}`
  const checkpoint = () => stack.db.collection('checkpoints').findOne({ _id: 'task_connector' as any })
  const reloaded = () => stack.db.collection('tasks').countDocuments({ lastEventId: { $gt: (last.split('-')[0]!) + '-G' } })
  let seen = 'nothing read yet'
  await waitFor('the reload under way', async () => {
    const [load, count] = [(await checkpoint())?.initialLoad, await reloaded()]
    seen = `initialLoad ${load}, ${count} tasks loaded`
    return load === 'done' || (load === 'running' && count >= LOADED_BEFORE_SNAPSHOT)
  }, 300_000, 100).catch((error) => {
    throw new Error(`${error.message} (${seen}); the connector's last lines: ${connector!.log().split('\n').slice(-8).join('\n')}`)
  })
  const response = await fetch(`${restarted}/v1/api/ws/Snapshot`, { headers: { accept: 'application/x-ndjson' } })
  const [header, ...tasks] = (await response.text()).trimEnd().split('\n').map((line) => JSON.parse(line)) as Document[]
  expect((await checkpoint())?.initialLoad).toBe('running')
  const afterSnapshot = await openStream(`${restarted}${STREAM}?since=${header!.lastEventId}`)
  expect(afterSnapshot.status).toBe(200)

  // The first reader comes back by itself (its loop now finds the restarted instance).
  const resumed = followStream([restarted], STREAM, reader.events.at(-1)!.id)
  await reader.stop()
  await waitFor('the connector to stream after its load', async () => (await connector!.info()).state === 'streaming', 300_000, 200)
  await waitCaughtUp(stack, connector, 120_000)
  last = await lastPublished()
  await waitFor('both readers at the end of the stream', () => resumed.events.at(-1)?.id === last && afterSnapshot.events.at(-1)?.id === last, 300_000, 50).catch((error) => {
    throw new Error(`${error.message}: the resumed reader at ${resumed.events.at(-1)?.id} (${resumed.served.length} streams), the one after the Snapshot at ${afterSnapshot.events.at(-1)?.id}, the last ${last}`)
  })
  await resumed.stop()
  afterSnapshot.close()

  const deletions = resumed.events.filter((event) => event.data.source === 'initial' && event.event.endsWith('.deleted'))
  expect(deletions.length).toBe(100 + 20 + 1)
  const following = projectionOf()
  applyEvents(following, [...reader.events, ...resumed.events])
  const fromSnapshot = projectionOf({ workspaces: header!.workspaces, tasks })
  applyEvents(fromSnapshot, afterSnapshot.events)
  const [taskRows, workspaceRows] = [await tableRows(sql, 'tasks'), await tableRows(sql, 'workspaces')]
  for (const projection of [following, fromSnapshot]) {
    expect(rowsById(projection.task.values())).toEqual(taskRows)
    expect(rowsById(projection.workspace.values())).toEqual(workspaceRows)
  }
}, 900_000)
