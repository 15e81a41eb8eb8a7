// A 1,000,000-row transaction through the whole pipeline: memory stays flat, every row arrives.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { peakRssMb } from './support/memory.ts'
import { type Connector, type Stack, startConnector, startStack, waitCaughtUp } from './support/stack.ts'
import { createWorkspace, insertTasks } from './support/workspace.ts'

// About ten minutes on FerretDB/SQLite (some 1,700 events a second). Memory is bounded per change held, not
// per transaction, so TC_BIG_ROWS=100000 shows the same peak sooner, for a quick local run.
const ROWS = Number(process.env.TC_BIG_ROWS ?? 1_000_000)
const RSS_LIMIT_MB = 200
const SAMPLE = 500

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
  expect(peak).toBeLessThan(RSS_LIMIT_MB)
  // Every message reached Pub/Sub (the emulator counts them exactly).
  expect(await stack.pubsub.count('taskTopic')).toBeGreaterThanOrEqual(ROWS + 1)

  // Counting a million documents takes FerretDB minutes, so MongoDB is checked by key, which it answers at
  // once: tasks drawn at random from the table are there, all left by the one transaction; its events
  // are there from the first ordinal to the last, and none beyond.
  const tasks = stack.db.collection<{ _id: string; workspaceId?: string; lastEventId?: string }>('tasks')
  const events = stack.db.collection<{ _id: string; type?: string }>('task_events')
  const sample = await stack.pg.sql<{ id: string }[]>`select id::text from tasks where workspace_id = ${workspaceId} order by random() limit ${SAMPLE}`
  expect(sample.length).toBe(Math.min(SAMPLE, ROWS))
  const stored = await Promise.all(sample.map(({ id }) => tasks.findOne({ _id: id })))
  expect(stored.filter((task) => task?.workspaceId !== workspaceId)).toEqual([])
  const commits = new Set(stored.map((task) => String(task!.lastEventId).split('-')[0]))
  expect(commits.size).toBe(1)
  const [commit] = commits
  const id = (ordinal: number) => `${commit}-${ordinal.toString(16).toUpperCase().padStart(8, '0')}`
  const ordinals = [0, ROWS - 1, ...Array.from({ length: SAMPLE }, () => Math.floor(Math.random() * ROWS))]
  const found = await Promise.all(ordinals.map((ordinal) => events.findOne({ _id: id(ordinal) }, { projection: { type: 1 } })))
  expect(found.filter((event) => event?.type !== 'task.created')).toEqual([])
  expect(await events.findOne({ _id: id(ROWS) })).toBeNull()
}, 1_500_000)
