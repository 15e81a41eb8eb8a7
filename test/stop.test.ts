// Stopping extract-tasks (contract section 6: exit 0 on SIGTERM/SIGINT). A stop during start-up leaves
// nothing behind; an initial load stops at the end of its page; with its sinks up it stops after the batches
// in flight; with a sink down it makes no further attempt, and with a sink that hangs it waits for the call
// under way at most STOP_GRACE_MS, or until a second signal. Each time the next start delivers what was cut short.

import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test'
import { STOP_GRACE_MS } from '../src/extract-tasks.ts'
import { waitFor } from './support/ports.ts'
import { type Connector, type Stack, publishedEvents, startConnector, startStack, waitCaughtUp, waitInitialLoadUnderWay } from './support/stack.ts'
import { noStateDifference, stateDifference } from './support/verify.ts'
import { createTask, createWorkspace, insertTasks } from './support/workspace.ts'

/** The MongoDB driver gives a server up after 10 s; then /info names the sink. */
const FAILING_SHOWN_WITHIN_MS = 30_000
/**
 * A hung server: the driver's socket timeout (30 s) fails the call, and /info names the sink; without that
 * timeout only the pipeline's 60 s attempt deadline would.
 */
const HUNG_CALL_SHOWN_WITHIN_MS = 50_000
/** How long an attempt under way may take to fail once MongoDB is down: the driver's server selection, 10 s. */
const ATTEMPT_FAILS_WITHIN_MS = 12_000
/** From the second signal to the exit: closing the connections, no waiting for the sink. */
const PROMPT_EXIT_MS = 5_000
/** Tasks present before the first start: a load of some seconds, stopped in its middle. */
const LOADED_TASKS = 10_000

let stack: Stack
let workspaceId: string
const connectors: Connector[] = []

beforeAll(async () => {
  stack = await startStack()
  workspaceId = await createWorkspace(stack.pg.sql, 'stop')
}, 120_000)
// A test that fails while FerretDB is frozen must not leave it so for the next.
afterEach(() => stack.mongo.thaw())
afterAll(async () => {
  for (const connector of connectors) await connector.kill('SIGKILL')
  await stack?.stop()
}, 120_000)

async function start(options?: Parameters<typeof startConnector>[1]) {
  const connector = await startConnector(stack, options)
  connectors.push(connector)
  return connector
}

/** Exit status, or null if the process is still running after `ms`. */
async function exitWithin(connector: Connector, ms: number): Promise<number | null> {
  return Promise.race([connector.process.exited, Bun.sleep(ms).then(() => null)])
}

/** Stops FerretDB, makes a task, and waits until the connector holds it with MongoDB failing. */
async function taskHeldByMongoOutage(connector: Connector): Promise<string> {
  await stack.mongo.stop()
  const taskId = await createTask(stack.pg.sql, workspaceId, { title: 'written while MongoDB is down' })
  await waitFor('/info to name MongoDB failing', async () => (await connector.info()).failingSinks?.includes('mongo'), FAILING_SHOWN_WITHIN_MS)
  return taskId
}

/** Freezes FerretDB, makes a task, and waits until the connector holds it, its write to MongoDB hanging. */
async function taskHeldByHungMongo(connector: Connector): Promise<string> {
  stack.mongo.freeze()
  const taskId = await createTask(stack.pg.sql, workspaceId, { title: 'written while MongoDB is down' })
  await waitFor('/info to hold the change', async () => (await connector.info()).pendingChanges > 0, 10_000)
  return taskId
}

/** Brings FerretDB back and starts a connector, which must deliver the task the stopped one held. */
async function expectDeliveredAfterRestart(taskId: string) {
  stack.mongo.thaw()
  await stack.mongo.restart()
  const connector = await start()
  await waitCaughtUp(stack, connector)
  expect(await stack.db.collection('tasks').findOne({ _id: taskId as any })).toMatchObject({ title: 'written while MongoDB is down' })
  expect((await publishedEvents(stack)).filter((event) => event.taskId === taskId).map((event) => event.type)).toContain('task.created')
  const difference = await stateDifference(stack.pg.sql, stack.db, 'tasks', [])
  expect(difference).toEqual(noStateDifference(difference))
  return connector
}

test('SIGTERM during start-up: exit 0 at once, and no slot is created', async () => {
  const slot = 'stopped_during_start_up'
  stack.mongo.freeze()
  try {
    const connector = await start({ until: 'spawned', flags: ['--slot', slot] })
    await waitFor('the connector to start up', async () => connector.log().includes('starting: slot'), 10_000)
    await Bun.sleep(1_000)
    connector.process.kill('SIGTERM')
    expect(await exitWithin(connector, PROMPT_EXIT_MS)).toBe(0)
    expect(connector.log()).toContain('stopped during start-up (connecting to MongoDB)')
  } finally {
    stack.mongo.thaw()
  }
  expect(await stack.pg.sql`select 1 from pg_replication_slots where slot_name = ${slot}`).toHaveLength(0)
}, 60_000)

test('SIGTERM during the initial load: exit 0 at the end of a page, and the next start loads again', async () => {
  await insertTasks(stack.pg.sql, workspaceId, LOADED_TASKS)
  const connector = await start({ until: 'answering' })
  await waitInitialLoadUnderWay(stack, 1, 60_000)
  connector.process.kill('SIGTERM')
  expect(await exitWithin(connector, PROMPT_EXIT_MS)).toBe(0)
  expect(connector.log()).toMatch(/initial load stopped after \d+ rows; the next start loads again/)
  expect(await stack.db.collection('tasks').estimatedDocumentCount()).toBeLessThan(LOADED_TASKS)

  const next = await start()
  expect(next.log()).toContain('has no finished initial load recorded; dropping it to create it again and load')
  const difference = await stateDifference(stack.pg.sql, stack.db, 'tasks', [])
  expect(difference).toEqual(noStateDifference(difference))
  expect(await next.kill('SIGTERM')).toBe(0)
}, 180_000)

test('SIGTERM with the sinks up: exit 0 once what was in flight is delivered', async () => {
  const connector = await start()
  const taskId = await createTask(stack.pg.sql, workspaceId, { title: 'before the stop' })
  await waitCaughtUp(stack, connector)
  expect(await connector.kill('SIGTERM')).toBe(0)
  expect(connector.log()).toContain('stopped at')
  expect(connector.log()).not.toContain('stopping without the batches in flight')
  expect(await stack.db.collection('tasks').findOne({ _id: taskId as any })).toMatchObject({ title: 'before the stop' })
}, 120_000)

test('MongoDB hung: a second SIGTERM stops at once with exit 0, and the next start delivers what was held', async () => {
  const connector = await start()
  const taskId = await taskHeldByHungMongo(connector)
  connector.process.kill('SIGTERM')
  expect(await exitWithin(connector, 2_000)).toBeNull()
  expect((await connector.info()).state).toBe('stopping')
  connector.process.kill('SIGTERM')
  expect(await exitWithin(connector, PROMPT_EXIT_MS)).toBe(0)
  expect(connector.log()).toContain('SIGTERM again: stopping without the batches in flight')
  await (await expectDeliveredAfterRestart(taskId)).kill()
}, 180_000)

test('PostgreSQL down: SIGTERM ends the wait before the next reconnect and exits 0 at once', async () => {
  const connector = await start()
  await stack.pg.pause()
  try {
    await waitFor(`a reconnect backoff of over ${PROMPT_EXIT_MS} ms`, () =>
      [...connector.log().matchAll(/retrying in (\d+) ms/g)].some((match) => Number(match[1]) > PROMPT_EXIT_MS), 90_000, 50)
    connector.process.kill('SIGTERM')
    expect(await exitWithin(connector, PROMPT_EXIT_MS)).toBe(0)
  } finally {
    await stack.pg.resume()
  }
}, 180_000)

test('MongoDB down: a SIGTERM ends the retries, exit 0 once the attempt under way fails, and the next start delivers what was held', async () => {
  const connector = await start()
  const taskId = await taskHeldByMongoOutage(connector)
  const signalled = performance.now()
  connector.process.kill('SIGTERM')
  expect(await exitWithin(connector, ATTEMPT_FAILS_WITHIN_MS + PROMPT_EXIT_MS)).toBe(0)
  expect(performance.now() - signalled).toBeLessThan(STOP_GRACE_MS)
  expect(connector.log()).toMatch(/mongo failed while stopping \(.*\): stopping without the batches in flight/)
  await (await expectDeliveredAfterRestart(taskId)).kill()
}, 180_000)

test(`MongoDB hung: one SIGTERM waits for the call under way, at most ${STOP_GRACE_MS / 1000} s, exits 0, and the next start delivers what was held`, async () => {
  const connector = await start()
  const taskId = await taskHeldByHungMongo(connector)
  connector.process.kill('SIGTERM')
  // The driver gives the hung server up after 10 to 30 s (its monitor, or the socket timeout): until then the
  // stop waits, and the grace bounds the wait whichever comes first.
  expect(await exitWithin(connector, PROMPT_EXIT_MS)).toBeNull()
  expect(await exitWithin(connector, STOP_GRACE_MS)).toBe(0)
  expect(connector.log()).toMatch(/(not done in \d+ s|mongo failed while stopping \(.*\)): stopping without the batches in flight \(\d+\)/)
  await (await expectDeliveredAfterRestart(taskId)).kill()
}, 180_000)

test('MongoDB hung: the call fails within the driver\'s socket timeout, /info names the sink, and the stream goes on once it answers', async () => {
  const connector = await start()
  const taskId = await taskHeldByHungMongo(connector)
  try {
    await waitFor('/info to name MongoDB failing', async () => (await connector.info()).failingSinks?.includes('mongo'), HUNG_CALL_SHOWN_WITHIN_MS)
  } finally {
    stack.mongo.thaw()
  }
  await waitCaughtUp(stack, connector)
  expect(await stack.db.collection('tasks').findOne({ _id: taskId as any })).toMatchObject({ title: 'written while MongoDB is down' })
  expect(await connector.kill()).toBe(0)
}, 180_000)
