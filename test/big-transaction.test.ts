// A 1,000,000-row transaction through the whole pipeline: memory stays flat, every row arrives, each once
// in task_events and at least once on Pub/Sub. It runs the binary as it ships, whatever the test run is for:
// the memory budget is the shipped program's, and the sources under `bun` add the transpiler and the sources'
// text, 10-15 MB of a peak that varies by some 30 MB from run to run with the garbage collector's timing.

import { expect, test } from 'bun:test'
import { peakRssMb } from './support/memory.ts'
import { lsnValue, waitCaughtUp } from './support/stack.ts'
import { shippedBinary } from './support/binary.ts'
import { sharedStack } from './support/shared-stack.ts'
import { ordinalHex, publishedIds, storedIds } from './support/verify.ts'
import { createWorkspace, insertTasks } from './support/workspace.ts'

// About ten minutes on FerretDB/SQLite (some 1,700 events a second). Memory is bounded per change held, not
// per transaction, so TC_BIG_ROWS=100000 shows the same peak sooner, for a quick local run.
const ROWS = Number(process.env.TC_BIG_ROWS ?? 1_000_000)
const RSS_LIMIT_MB = 200
const SAMPLE = 500

const shared = sharedStack({}, () => [shippedBinary()])

/** An event id's commit LSN (its first 16 hex digits). */
const commitOf = (id: string) => BigInt(`0x${id.slice(0, 16)}`)

test(`a ${ROWS.toLocaleString('en')}-row transaction reaches MongoDB and Pub/Sub with the shipped binary's peak RSS under ${RSS_LIMIT_MB} MB`, async () => {
  const workspaceId = await createWorkspace(shared.stack.pg.sql, 'big')
  const before = await walPosition()
  await insertTasks(shared.stack.pg.sql, workspaceId, ROWS)
  const after = await walPosition()
  await waitCaughtUp(shared.stack, shared.connector, 1_200_000)

  const peak = peakRssMb(shared.connector.process.pid)
  console.error(`big transaction through the pipeline: connector peak RSS ${peak} MB`)
  expect(peak).toBeLessThan(RSS_LIMIT_MB)

  // Every event exactly: the workspace's, then the transaction's from its first ordinal to its last, all
  // under one commit LSN written by the insert. task_events is read by its ids alone (a range scan of
  // `_id`), Pub/Sub by distinct event ids, so that one lost row, or one stored twice, fails the test.
  const [stored, { messages, ids: published }] = await Promise.all([storedIds(shared.stack.db), publishedIds(shared.stack)])
  console.error(`big transaction: ${stored.length} events stored, ${published.size} distinct of ${messages} published`)
  const [workspaceEvent, ...rows] = stored
  const commit = rows[0]?.split('-')[0] ?? ''
  expect(commitOf(workspaceEvent!)).toBeLessThanOrEqual(before)
  expect(commitOf(commit)).toBeGreaterThan(before)
  expect(commitOf(commit)).toBeLessThanOrEqual(after)
  const notInSequence = rows.map((id, ordinal) => [id, `${commit}-${ordinalHex(ordinal)}`]).filter(([id, want]) => id !== want)
  expect({ rows: rows.length, notInSequence: notInSequence.slice(0, 5) }).toEqual({ rows: ROWS, notInSequence: [] })
  expect({ distinct: published.size, missing: stored.filter((id) => !published.has(id)).slice(0, 5) }).toEqual({ distinct: ROWS + 1, missing: [] })

  // And the rows' state: tasks drawn at random from the table are there, all left by the one transaction.
  const tasks = shared.stack.db.collection<{ _id: string; workspaceId?: string; lastEventId?: string }>('tasks')
  const sample = await shared.stack.pg.sql<{ id: string }[]>`select id::text from tasks where workspace_id = ${workspaceId} order by random() limit ${SAMPLE}`
  expect(sample.length).toBe(Math.min(SAMPLE, ROWS))
  const found = await Promise.all(sample.map(({ id }) => tasks.findOne({ _id: id })))
  expect(found.filter((task) => task?.workspaceId !== workspaceId || !String(task.lastEventId).startsWith(`${commit}-`))).toEqual([])
}, 1_500_000)

async function walPosition(): Promise<bigint> {
  const [{ position }] = await shared.stack.pg.sql<[{ position: string }]>`select pg_current_wal_insert_lsn()::text as position`
  return lsnValue(position)
}
