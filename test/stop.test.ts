// Stopping extract-tasks (contract section 6: exit 0 on SIGTERM/SIGINT). An initial load stops at the end
// of its page; with its sinks up it stops after the batches in flight; with a sink down it does not wait
// for the sink: a second signal stops it at once, one signal after STOP_GRACE_MS. Each time the next start
// delivers what was cut short.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { STOP_GRACE_MS } from '../src/extract-tasks.ts'
import { waitFor } from './support/ports.ts'
import { type Connector, type Stack, publishedEvents, startConnector, startStack, waitCaughtUp, waitInitialLoadUnderWay } from './support/stack.ts'
import { noStateDifference, stateDifference } from './support/verify.ts'
import { createTask, createWorkspace, insertTasks } from './support/workspace.ts'

/** The MongoDB driver gives a server up after 10 s; then /info names the sink. */
const FAILING_SHOWN_WITHIN_MS = 30_000
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

/** Brings FerretDB back and starts a connector, which must deliver the task the stopped one held. */
async function expectDeliveredAfterRestart(taskId: string) {
  await stack.mongo.restart()
  const connector = await start()
  await waitCaughtUp(stack, connector)
  expect(await stack.db.collection('tasks').findOne({ _id: taskId as any })).toMatchObject({ title: 'written while MongoDB is down' })
  expect((await publishedEvents(stack)).filter((event) => event.taskId === taskId).map((event) => event.type)).toContain('task.created')
  const difference = await stateDifference(stack.pg.sql, stack.db, 'tasks', [])
  expect(difference).toEqual(noStateDifference(difference))
  return connector
}

test('SIGTERM during the initial load: exit 0 at the end of a page, and the next start loads again', async () => {
  await insertTasks(stack.pg.sql, workspaceId, LOADED_TASKS)
  const connector = await start({ until: 'answering' })
  await waitInitialLoadUnderWay(stack, 1, 60_000)
  connector.process.kill('SIGTERM')
  expect(await exitWithin(connector, PROMPT_EXIT_MS)).toBe(0)
  expect(connector.log()).toMatch(/initial load stopped after \d+ rows; the next start loads again/)
  expect(await stack.db.collection('tasks').estimatedDocumentCount()).toBeLessThan(LOADED_TASKS)

  const next = await start()
  expect(next.log()).toContain('did not finish; dropping the slot to load again')
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

test('MongoDB down: a second SIGTERM stops at once with exit 0, and the next start delivers what was held', async () => {
  const connector = await start()
  const taskId = await taskHeldByMongoOutage(connector)
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

test(`MongoDB down: one SIGTERM stops after ${STOP_GRACE_MS / 1000} s with exit 0, and the next start delivers what was held`, async () => {
  const connector = await start()
  const taskId = await taskHeldByMongoOutage(connector)
  const signalled = performance.now()
  connector.process.kill('SIGTERM')
  expect(await exitWithin(connector, STOP_GRACE_MS + PROMPT_EXIT_MS)).toBe(0)
  expect(performance.now() - signalled).toBeGreaterThanOrEqual(STOP_GRACE_MS)
  expect(connector.log()).toContain(`not done in ${STOP_GRACE_MS / 1000} s: stopping without the batches in flight`)
  await (await expectDeliveredAfterRestart(taskId)).kill()
}, 180_000)
