// What a start does with a slot that already exists (contract section 2, initial load): it streams from the
// slot only when the checkpoint records that the slot's initial load finished. A slot left without that
// record (a process that died between creating it and writing the record, or a slot made by hand) is
// dropped, created again, and the existing rows loaded; otherwise they would never reach MongoDB.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type Stack, startConnector, startStack } from './support/stack.ts'
import { noStateDifference, stateDifference } from './support/verify.ts'
import { createWorkspace, insertTasks } from './support/workspace.ts'

const EXISTING_TASKS = 500

let stack: Stack

beforeAll(async () => {
  stack = await startStack()
}, 120_000)
afterAll(async () => {
  await stack?.stop()
}, 120_000)

test('a slot with no finished initial load recorded is dropped, created again and loaded', async () => {
  const { sql } = stack.pg
  const workspaceId = await createWorkspace(sql, 'existing before the slot')
  await insertTasks(sql, workspaceId, EXISTING_TASKS)
  // The state a crash right after CREATE_REPLICATION_SLOT leaves: the slot, and no record of its load.
  await sql`select pg_create_logical_replication_slot('task_connector', 'wal2json')`

  const connector = await startConnector(stack)
  try {
    expect(connector.log()).toContain('replication slot task_connector has no finished initial load recorded; dropping it')
    const difference = await stateDifference(sql, stack.db, 'tasks', [])
    expect(difference).toEqual(noStateDifference(difference))
    const loaded = await stack.db.collection('task_events').find({ source: 'initial', type: 'task.snapshot' }, { projection: { lsn: 1 } }).toArray()
    expect(loaded).toHaveLength(EXISTING_TASKS)
    const checkpoint = await stack.db.collection('checkpoints').findOne({ _id: 'task_connector' as any })
    expect(checkpoint).toMatchObject({ initialLoad: 'done', loadedAt: loaded[0]!.lsn })
  } finally {
    expect(await connector.kill()).toBe(0)
  }

  // Recorded now: the next start streams from the same slot, loading nothing again.
  const next = await startConnector(stack)
  try {
    expect(next.log()).not.toContain('dropping it')
    expect(next.log()).not.toContain('initial load from snapshot')
  } finally {
    expect(await next.kill()).toBe(0)
  }
}, 180_000)

test('with --initial-load never, an existing slot is streamed from as it is', async () => {
  const { sql } = stack.pg
  await sql`select pg_create_logical_replication_slot('made_by_hand', 'wal2json')`
  const connector = await startConnector(stack, { flags: ['--slot', 'made_by_hand', '--initial-load', 'never', '--mongo-db', 'never_loaded'] })
  try {
    expect(connector.log()).not.toContain('dropping it')
    expect(await stack.mongoClient.db('never_loaded').collection('tasks').countDocuments()).toBe(0)
  } finally {
    expect(await connector.kill()).toBe(0)
  }
}, 120_000)
