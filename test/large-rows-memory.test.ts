// Memory is bounded by what events weigh, not by WAL bytes or row counts (docs/configuration.md, "Memory").
// 400 tasks with a 1 MB description, then one UPDATE of all their statuses under REPLICA IDENTITY DEFAULT:
// the update is some 300 bytes of WAL a row, but each of its events carries the description twice (`data`,
// filled from the connector's state, and `previous`), and every one of its rows must be known. The shipped
// binary's peak RSS stays within the budget through both, and every event arrives whole.

import { expect, test } from 'bun:test'
import { shippedBinary } from './support/binary.ts'
import { peakRssMb } from './support/memory.ts'
import { sharedStack } from './support/shared-stack.ts'
import { TOPIC, waitCaughtUp } from './support/stack.ts'
import { createWorkspace } from './support/workspace.ts'

// TC_LARGE_ROWS: fewer tasks, for a quick local run.
const TASKS = Number(process.env.TC_LARGE_ROWS ?? 400)
const DESCRIPTION_BYTES = 1_000_000
const RSS_LIMIT_MB = 250
// Rows inserted a transaction: the inserts stream as a run of ordinary transactions.
const INSERTS_PER_TRANSACTION = 10

const shared = sharedStack({}, () => [shippedBinary()])

test(`${TASKS} tasks with a 1 MB description, then one update of them all: the binary's peak RSS stays under ${RSS_LIMIT_MB} MB`, async () => {
  const { sql } = shared.stack.pg
  const pid = shared.connector.process.pid
  const workspaceId = await createWorkspace(sql, 'large rows')
  // Text of 32 hex digits a piece, made by the server: each row's differs, and compresses little.
  for (let first = 0; first < TASKS; first += INSERTS_PER_TRANSACTION)
    await sql`
      insert into tasks (id, workspace_id, title, description)
      select gen_random_uuid(), ${workspaceId}, 'large ' || g,
             (select string_agg(md5(g::text || ':' || piece::text || random()::text), '') from generate_series(1, ${DESCRIPTION_BYTES / 32}::int) piece)
      from generate_series(${first}::int, ${first + INSERTS_PER_TRANSACTION - 1}::int) g`
  await waitCaughtUp(shared.stack, shared.connector, 300_000)
  console.error(`large rows: inserts caught up at ${Math.round(performance.now() / 1000)} s`)
  const afterInserts = peakRssMb(pid)

  console.error(`large rows: update at ${Math.round(performance.now() / 1000)} s`)
  await sql`update tasks set status = 'in_progress' where workspace_id = ${workspaceId}`
  await waitCaughtUp(shared.stack, shared.connector, 600_000)
  console.error(`large rows: update caught up at ${Math.round(performance.now() / 1000)} s`)
  const afterUpdate = peakRssMb(pid)
  console.error(`large rows: connector peak RSS ${afterInserts} MB through the inserts, ${afterUpdate} MB through the update`)
  expect(afterInserts).toBeLessThan(RSS_LIMIT_MB)
  expect(afterUpdate).toBeLessThan(RSS_LIMIT_MB)

  // Every event whole, on Pub/Sub: each creation with its description, each update with it in `data` and
  // `previous`, nothing left out.
  const seen = { created: 0, updated: 0, whole: 0 }
  await shared.stack.pubsub.eachMessage(TOPIC, (message) => {
    const event = JSON.parse(message.data.toString())
    if (event.type !== 'task.created' && event.type !== 'task.updated') return
    seen[event.type === 'task.created' ? 'created' : 'updated']++
    const whole =
      !('omitted' in event) &&
      event.data.description?.length === DESCRIPTION_BYTES &&
      (event.type === 'task.created' || (event.previous?.description === event.data.description && event.data.status === 'in_progress'))
    if (whole) seen.whole++
  })
  expect(seen).toEqual({ created: TASKS, updated: TASKS, whole: 2 * TASKS })
  // And in MongoDB: every update stored with both copies.
  const stored = shared.stack.db.collection('task_events').find({ type: 'task.updated' }, { batchSize: 8 })
  let storedWhole = 0
  for await (const event of stored)
    if (!event.omitted && event.data.description.length === DESCRIPTION_BYTES && event.previous.description === event.data.description) storedWhole++
  expect(storedWhole).toBe(TASKS)
}, 1_200_000)
