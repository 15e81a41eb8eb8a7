// A replay republishes what it first published (contract section 3: `eventId` lets subscribers drop
// duplicates, so every copy must be the same event). One transaction inserts rows, moves a task todo →
// in_progress → done, and inserts more: more changes than the source holds unacknowledged (4,000), with
// MongoDB's writes held by a lock on FerretDB's SQLite file, so the source stops reading mid-transaction. The
// walsender is ended there and the lock released: the batches in flight land while the new stream re-sends the
// transaction from its begin (it was never handed out whole). The updates' copies must say what the first
// ones said, not be rebuilt from the task's state after both.

import { expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { dirname, join } from 'node:path'
import { waitFor } from './support/ports.ts'
import { sharedStack } from './support/shared-stack.ts'
import { MONGO_DATABASE, publishedEvents, waitCaughtUp } from './support/stack.ts'
import { published } from './support/verify.ts'
import { createTask, createWorkspace, insertTasks } from './support/workspace.ts'

// Before the updates and after them: the updates within the first 4,000 changes, which the source hands out
// unacknowledged (its default limit), and the transaction more than that.
const FILLER_ROWS = 3_000

// SQLite: its file is what the test locks (FerretDB keeps one file per database in its state directory).
const shared = sharedStack({ backend: 'sqlite' })

test('a walsender ended mid-transaction with its first batches in flight: every copy of an event on Pub/Sub carries the same data', async () => {
  const { stack, connector } = shared
  const { sql } = stack.pg
  const workspaceId = await createWorkspace(sql, 'replay')
  const taskId = await createTask(sql, workspaceId, { status: 'todo' })
  await waitCaughtUp(stack, connector)
  const updatesOf = async () => (await publishedEvents(stack)).filter((event) => event.taskId === taskId && event.type === 'task.updated')

  // Writers wait for this lock (readers do not): the batches stay in flight with MongoDB answering reads.
  const storage = new Database(join(dirname(stack.mongo.logPath), `${MONGO_DATABASE}.sqlite`))
  storage.exec('begin immediate')
  try {
    await sql.begin(async (sql) => {
      await insertTasks(sql, workspaceId, FILLER_ROWS, 'before')
      await sql`update tasks set status = 'in_progress' where id = ${taskId}`
      await sql`update tasks set status = 'done' where id = ${taskId}`
      await insertTasks(sql, workspaceId, FILLER_ROWS, 'after')
    })
    await waitFor('the source to stop reading mid-transaction', async () => (await connector.info()).readingPaused === true, 60_000)
    const [{ pid }] = await sql<[{ pid: number }]>`select active_pid as pid from pg_replication_slots where slot_name = 'task_connector'`
    await sql`select pg_terminate_backend(${pid})`
    await waitFor('a new replication stream', async () => (await connector.info()).reconnects >= 1, 60_000)
  } finally {
    storage.exec('commit')
    storage.close()
  }
  await waitCaughtUp(stack, connector, 120_000)

  const { counts, differingCopies, first } = await published(stack)
  const updates = (await updatesOf()).map((event) => event.id)
  expect({
    differingCopies,
    republished: [...new Set(updates)].filter((id) => counts.get(id)! > 1).length,
    previousStatuses: [...new Set(updates)].map((id) => JSON.parse(first.get(id)!.data.toString()).previous.status),
  }).toEqual({ differingCopies: [], republished: 2, previousStatuses: ['todo', 'in_progress'] })
}, 180_000)
