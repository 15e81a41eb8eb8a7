// A 1,000,000-row transaction through the whole pipeline: memory stays flat, every row arrives.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { peakRssMb } from './support/memory.ts'
import { type Connector, type Stack, startConnector, startStack, waitCaughtUp } from './support/stack.ts'
import { createWorkspace, insertTasks } from './support/workspace.ts'

// The figure is 1,000,000 rows (TC_BIG_ROWS=1000000). FerretDB on SQLite stores about 2,000 events a
// second, so the suite's default is smaller: memory is bounded per change held, not per transaction, so the
// peak is reached long before the end either way.
const ROWS = Number(process.env.TC_BIG_ROWS ?? 200_000)
const RSS_LIMIT_MB = 200

let stack: Stack
let connector: Connector

beforeAll(async () => {
  stack = await startStack()
  connector = await startConnector(stack)
}, 120_000)
afterAll(async () => {
  await connector?.kill()
  await stack?.stop()
}, 120_000)

test(`a ${ROWS.toLocaleString('en')}-row transaction reaches MongoDB and Pub/Sub with the connector's peak RSS under ${RSS_LIMIT_MB} MB`, async () => {
  const workspaceId = await createWorkspace(stack.pg.sql, 'big')
  await insertTasks(stack.pg.sql, workspaceId, ROWS)
  await waitCaughtUp(stack, connector, 1_200_000)

  const peak = peakRssMb(connector.process.pid)
  console.error(`big transaction through the pipeline: connector peak RSS ${peak} MB`)
  expect(await stack.db.collection('task_events').countDocuments({ type: 'task.created' })).toBe(ROWS)
  expect(await stack.db.collection('tasks').countDocuments({ workspaceId })).toBe(ROWS)
  expect(await stack.pubsub.count('taskTopic')).toBeGreaterThanOrEqual(ROWS + 1)
  expect(peak).toBeLessThan(RSS_LIMIT_MB)
}, 1_500_000)
