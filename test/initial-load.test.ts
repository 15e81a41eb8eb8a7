// The initial load (contract section 2): rows that exist before the slot are loaded through the sinks in
// the slot's snapshot; writes during the load and a SIGKILL in its middle lose nothing. What the rows were
// at the final load's consistent point, and what changed after it, comes from a slot of our own created
// before the writes: exactly one `initial` event per row as of that point, every later change as a `cdc`
// event after all of the load's (in ids and in Pub/Sub's delivery order), a tombstone for every row deleted;
// a row the killed load stored and that is gone at the final load's point gets a deletion of source `initial`.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type Connector, type Stack, TOPIC, lsnValue, startConnector, startStack, waitCaughtUp, waitInitialLoadUnderWay } from './support/stack.ts'
import {
  ALL_IDS,
  type ExpectedChange,
  createVerificationSlot,
  expectedChanges,
  lsnHex16,
  noStateDifference,
  setDifference,
  stateDifference,
  storedIds,
} from './support/verify.ts'
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
  // Nothing is written while our slot is created and the rows read: they are the rows as of its start.
  await createVerificationSlot(sql)
  const rowsAtStart = {
    tasks: new Set((await sql<{ id: string }[]>`select id::text from tasks`).map(({ id }) => id)),
    workspaces: new Set((await sql<{ id: string }[]>`select id::text from workspaces`).map(({ id }) => id)),
  }
  const writer = startWriter(workspaceId)

  const first = await startConnector(stack, { until: 'answering' })
  connectors.push(first)
  await waitInitialLoadUnderWay(stack, KILL_AFTER_LOADED, 600_000)
  await first.kill('SIGKILL')
  const [{ lsn: firstSlotLsn }] = await sql<[{ lsn: string }]>`select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = 'task_connector'`

  // The second connector loads every task again before it streams: minutes on a slow host.
  const second = await startConnector(stack, { until: 'streaming', timeoutMs: 900_000 })
  connectors.push(second)
  expect(second.log()).toContain('has no finished initial load recorded; dropping it to create it again and load')
  const transactions = await writer.stop()
  await waitCaughtUp(stack, second, 600_000)

  expect(transactions).toBeGreaterThan(0)
  const checkpoint = await stack.db.collection('checkpoints').findOne({ _id: 'task_connector' as any })
  expect(checkpoint?.initialLoad).toBe('done')
  const [{ lsn: secondSlotLsn }] = await sql<[{ lsn: string }]>`select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = 'task_connector'`
  expect(secondSlotLsn).not.toBe(firstSlotLsn)

  // The final load's consistent point: of the two loads' id prefixes (no streamed commit has one), the later.
  const expected = await expectedChanges(sql)
  const commits = new Set(expected.map((change) => lsnHex16(change.lsn)))
  const loads = [...new Set((await storedIds(stack.db)).map((id) => id.split('-')[0]!))].filter((prefix) => !commits.has(prefix)).sort()
  expect(loads).toHaveLength(2)
  const point = loads[1]!
  expect(BigInt(`0x${point}`)).toBeGreaterThan(lsnValue(firstSlotLsn))
  const streamed = expected.filter((change) => lsnHex16(change.lsn) > point)
  const deleted = expected.filter((change) => change.kind === 'delete')
  expect(streamed.length).toBeGreaterThan(0)
  expect(expected.length - streamed.length).toBeGreaterThan(0)
  expect(deleted.some((change) => lsnHex16(change.lsn) > point) && deleted.some((change) => lsnHex16(change.lsn) <= point)).toBe(true)

  // Exactly one initial event per row as of the point, in task_events and on Pub/Sub alike.
  const atPoint = rowsAt(rowsAtStart, expected, point)
  const loadIds = await storedIds(stack.db, { from: `${point}-`, to: `${point}-G` })
  const firstDelivery = new Map<string, number>()
  const loadEvents = new Map<string, Record<string, any>>()
  await stack.pubsub.eachMessage(TOPIC, (message) => {
    const id = message.attributes.eventId!
    if (!firstDelivery.has(id)) firstDelivery.set(id, firstDelivery.size)
    if (id.startsWith(`${point}-`)) loadEvents.set(id, JSON.parse(message.data.toString()))
  })
  expect(setDifference(loadIds, loadEvents.keys())).toEqual(setDifference(loadIds, loadIds))
  const perRow = new Map<string, number>()
  const notInitial: string[] = []
  const vanished: { id: string; key: string }[] = []
  let lastSnapshot = ''
  for (const [id, event] of loadEvents) {
    const entity = event.taskId ? 'task' : 'workspace'
    const key = event.taskId ? `tasks:${event.taskId}` : `workspaces:${event.workspaceId}`
    if (event.source !== 'initial' || (event.type !== `${entity}.snapshot` && event.type !== `${entity}.deleted`)) notInitial.push(`${id}: ${event.source} ${event.type}`)
    if (event.type.endsWith('.deleted')) vanished.push({ id, key })
    else {
      perRow.set(key, (perRow.get(key) ?? 0) + 1)
      if (id > lastSnapshot) lastSnapshot = id
    }
  }
  expect(notInitial.slice(0, 5)).toEqual([])
  const rowKeys = new Set([...[...atPoint.tasks].map((id) => `tasks:${id}`), ...[...atPoint.workspaces].map((id) => `workspaces:${id}`)])
  expect({ ...setDifference(rowKeys, perRow.keys()), twice: [...perRow].filter(([, count]) => count > 1).slice(0, 5) })
    .toEqual({ ...setDifference(rowKeys, rowKeys), twice: [] })
  // Deletions only of rows gone at the point, after every row of the load.
  expect(vanished.filter(({ id, key }) => rowKeys.has(key) || id < lastSnapshot).slice(0, 5)).toEqual([])

  // Every change after the point as a cdc event (the events before it are in the load), after all of the
  // load's: by id, and in Pub/Sub's order of first delivery.
  const cdcIds = await storedIds(stack.db, { from: `${point}-G`, to: ALL_IDS.to })
  const streamedIds = streamed.map((change) => change.id)
  expect(setDifference(streamedIds, cdcIds, cdcIds.length)).toEqual(setDifference(streamedIds, streamedIds))
  const lastLoadDelivered = loadIds.reduce((last, id) => Math.max(last, firstDelivery.get(id)!), -1)
  expect(streamedIds.filter((id) => !(firstDelivery.get(id)! > lastLoadDelivered)).slice(0, 5)).toEqual([])
  expect(cdcIds[0]! > loadIds.at(-1)!).toBe(true)

  // The tables' rows as documents, a tombstone for every row deleted after the point and no live document
  // for one deleted before it (the first load may have written it), each row's lastEventId its last change's.
  for (const table of ['tasks', 'workspaces'] as const) {
    const difference = await stateDifference(sql, stack.db, table, streamed)
    expect(difference).toEqual(noStateDifference(difference))
  }
  const loaded = await stack.db.collection('tasks').findOne({ _id: nullTask as any })
  expect(loaded).toMatchObject({ title: 'NULL', description: null, dueAt: null, assigneeId: null })
}, 1_800_000)

/** The ids of each table's rows at `point` (16 hex digits): those at our slot's start, changed by the changes committed up to it. */
function rowsAt(start: Record<'tasks' | 'workspaces', Set<string>>, changes: ExpectedChange[], point: string) {
  const rows = { tasks: new Set(start.tasks), workspaces: new Set(start.workspaces) }
  for (const change of changes) {
    if (lsnHex16(change.lsn) > point) break
    if (change.kind === 'truncate') rows[change.table].clear()
    else if (change.kind === 'insert') rows[change.table].add(change.rowId!)
    else if (change.kind === 'delete') rows[change.table].delete(change.rowId!)
  }
  return rows
}
