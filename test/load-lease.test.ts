// Two instances started together on a fresh slot (contract section 2, initial load; docs: the load record): one
// creates the slot and loads it, under a lease it renews; the other finds the load claimed, or the slot made, or the
// slot held, and stands by. It never drops the slot that is being loaded, never writes `running` over the
// other's claim or its `done`, and a restart of the one that loaded streams on, loading nothing again.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { waitFor } from './support/ports.ts'
import { type Connector, type Stack, startConnector, startStack } from './support/stack.ts'
import { createWorkspace, insertTasks } from './support/workspace.ts'

// A load of some seconds, so that the second instance meets it under way.
const EXISTING_TASKS = 10_000
const LOADING = 'initial load from snapshot'

let stack: Stack
const connectors: Connector[] = []

beforeAll(async () => {
  stack = await startStack()
}, 120_000)
afterAll(async () => {
  for (const connector of connectors) await connector.kill('SIGKILL')
  await stack?.stop()
}, 120_000)

const state = async (connector: Connector) => ((await connector.info()).state as string) ?? ''

test('two instances on a fresh slot: one loads, the other stands by and never drops the slot; a restart loads nothing', async () => {
  const workspaceId = await createWorkspace(stack.pg.sql, 'existing before the slot')
  await insertTasks(stack.pg.sql, workspaceId, EXISTING_TASKS)

  const pair = await Promise.all([startConnector(stack, { until: 'answering' }), startConnector(stack, { until: 'answering' })])
  connectors.push(...pair)
  let states: string[] = []
  await waitFor('one instance streaming, the other standing by', async () => {
    states = (await Promise.all(pair.map(state))).sort()
    return states[0] === 'standby' && states[1] === 'streaming'
  }, 240_000, 200).catch((error) => {
    throw new Error(`${error.message}: states ${states}\n${pair.map((connector) => connector.log()).join('\n---\n')}`)
  })
  const loader = pair.find((connector) => connector.log().includes(LOADING))!
  const other = pair.find((connector) => connector !== loader)!
  expect(loader).toBeDefined()
  expect(await state(loader)).toBe('streaming')
  expect(other.log()).not.toContain(LOADING)
  expect(other.log()).not.toContain('dropping it')
  // It met the load under way (the claim, the slot made, or the slot being loaded), not a slot already streamed.
  expect(other.log()).toMatch(/(being loaded|created|written) by another process[^"]*; standing by/)
  const loaded = await stack.db.collection('task_events').countDocuments({ source: 'initial', type: 'task.snapshot' })
  expect(loaded).toBe(EXISTING_TASKS)
  expect(await stack.db.collection('checkpoints').findOne({ _id: 'task_connector' as any })).toMatchObject({ initialLoad: 'done' })

  for (const connector of pair) expect(await connector.kill()).toBe(0)
  const restarted = await startConnector(stack)
  connectors.push(restarted)
  expect(restarted.log()).not.toContain(LOADING)
  expect(restarted.log()).not.toContain('dropping it')
  expect(await stack.db.collection('task_events').countDocuments({ source: 'initial', type: 'task.snapshot' })).toBe(EXISTING_TASKS)
  expect(await restarted.kill()).toBe(0)
}, 420_000)
