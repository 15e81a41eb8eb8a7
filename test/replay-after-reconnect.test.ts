// A replay republishes what it first published (contract section 3: `eventId` lets subscribers drop
// duplicates, so every copy must be the same event). A transaction moves a task todo → in_progress → done and
// then inserts more rows than the source holds unacknowledged (4,000 changes): with MongoDB's writes held by a
// lock on FerretDB's SQLite file, its first part is built and published but not durable, and the source stops
// reading mid-transaction. The walsender is ended there; the new stream re-sends the transaction from its begin
// (it was never handed out whole). Its copies must say what the first ones said, not be rebuilt from the task's
// state after both updates.

import { expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { dirname, join } from 'node:path'
import { waitFor } from './support/ports.ts'
import { sharedStack } from './support/shared-stack.ts'
import { MONGO_DATABASE, publishedEvents, waitCaughtUp } from './support/stack.ts'
import { published } from './support/verify.ts'
import { createTask, createWorkspace, insertTasks } from './support/workspace.ts'

// More changes than the source hands out unacknowledged (its default 4,000): the transaction cannot be read whole.
const FILLER_ROWS = 6_000

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
      await sql`update tasks set status = 'in_progress' where id = ${taskId}`
      await sql`update tasks set status = 'done' where id = ${taskId}`
      await insertTasks(sql, workspaceId, FILLER_ROWS, 'filler')
    })
    await waitFor('both updates published', async () => (await updatesOf()).length >= 2, 60_000)
    const [{ pid }] = await sql<[{ pid: number }]>`select active_pid as pid from pg_replication_slots where slot_name = 'task_connector'`
    await sql`select pg_terminate_backend(${pid})`
    // Either the re-sent updates are published at once (rebuilt while their batches are in flight), or the
    // pipeline says it waits for those batches.
    await waitFor('the new stream to re-send the updates', async () =>
      (await updatesOf()).length > 2 || connector.log().includes('batches in flight to land before replaying'), 60_000)
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
