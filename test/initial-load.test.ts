// The initial load (contract section 2): rows that exist before the slot are loaded through the sinks in
// the slot's snapshot; writes during the load and a SIGKILL in its middle lose nothing.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type Connector, type Stack, startConnector, startStack, waitCaughtUp, waitInitialLoadUnderWay } from './support/stack.ts'
import { noStateDifference, stateDifference } from './support/verify.ts'
import { createTask, createWorkspace, insertTasks } from './support/workspace.ts'

// TC_INITIAL_LOAD_ROWS=20000 for a quick local run.
const EXISTING_TASKS = Number(process.env.TC_INITIAL_LOAD_ROWS ?? 200_000)
const KILL_AFTER_LOADED = Math.floor(EXISTING_TASKS / 10)

let stack: Stack
const connectors: Connector[] = []

beforeAll(async () => {
  stack = await startStack()
}, 120_000)
afterAll(async () => {
  for (const connector of connectors) await connector.kill('SIGKILL')
  await stack?.stop()
}, 120_000)

/** Changes existing rows, adds and deletes some, one small transaction after the other, until stopped. */
function startWriter(workspaceId: string) {
  let stopped = false
  let transactions = 0
  const done = (async () => {
    while (!stopped) {
      await stack.pg.sql.begin(async (sql) => {
        await sql`update tasks set status = (array['todo','in_progress','blocked','done'])[1 + floor(random() * 4)::int], updated_at = now()
                  where id = any(array(select id from tasks tablesample system (0.05) limit 5))`
        await sql`insert into tasks (id, workspace_id, title) values (gen_random_uuid(), ${workspaceId}, 'written during the load')`
        await sql`delete from tasks where id = any(array(select id from tasks tablesample system (0.05) limit 1))`
      })
      transactions++
      await Bun.sleep(20)
    }
  })()
  return {
    async stop() {
      stopped = true
      await done
      return transactions
    },
  }
}

test(`${EXISTING_TASKS.toLocaleString('en')} existing tasks are loaded; writes during the load and a SIGKILL in its middle lose nothing`, async () => {
  const { sql } = stack.pg
  const workspaceId = await createWorkspace(sql, 'existing')
  await insertTasks(sql, workspaceId, EXISTING_TASKS)
  // NULLs and the text 'NULL' must come through the load as they are.
  const nullTask = await createTask(sql, workspaceId, { title: 'NULL', description: null, due_at: null, assignee_id: null })
  const writer = startWriter(workspaceId)

  const first = await startConnector(stack, { until: 'answering' })
  connectors.push(first)
  await waitInitialLoadUnderWay(stack, KILL_AFTER_LOADED, 600_000)
  await first.kill('SIGKILL')
  const [{ lsn: firstSlotLsn }] = await sql<[{ lsn: string }]>`select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = 'task_connector'`

  // The second connector loads every task again before it streams: minutes on a slow host.
  const second = await startConnector(stack, { until: 'streaming', timeoutMs: 900_000 })
  connectors.push(second)
  expect(second.log()).toContain('did not finish; dropping the slot to load again')
  const transactions = await writer.stop()
  await waitCaughtUp(stack, second, 600_000)

  expect(transactions).toBeGreaterThan(0)
  const checkpoint = await stack.db.collection('checkpoints').findOne({ _id: 'task_connector' as any })
  expect(checkpoint?.initialLoad).toBe('done')
  const [{ lsn: secondSlotLsn }] = await sql<[{ lsn: string }]>`select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = 'task_connector'`
  expect(secondSlotLsn).not.toBe(firstSlotLsn)

  for (const table of ['tasks', 'workspaces'] as const) {
    const difference = await stateDifference(sql, stack.db, table, [])
    expect(difference).toEqual(noStateDifference(difference))
  }
  const loaded = await stack.db.collection('tasks').findOne({ _id: nullTask as any })
  expect(loaded).toMatchObject({ title: 'NULL', description: null, dueAt: null, assigneeId: null })
  // Writes made during the second load reach the history as streamed events, after the load's.
  expect(await stack.db.collection('task_events').countDocuments({ source: 'cdc', type: 'task.created' })).toBeGreaterThan(0)
}, 1_800_000)
