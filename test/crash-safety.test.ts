// Crash safety: while a 100,000-change workload is written (inserts, updates with and without status
// changes, deletes, workspace deletes that cascade, in transactions of 1 to 3,000 rows), extract-tasks is
// killed with SIGKILL at ten random moments and started again each time, resuming from its checkpoint.
// Once it has caught up, nothing is lost and nothing is applied twice: every change's event reached
// Pub/Sub, first delivered in id order per ordering key, task_events holds each change exactly once, both
// tell it truly field by field (data, previous, changed, transition), and tasks and workspaces equal the
// tables. What the changes were comes from a slot of our own, not from the connector.
//
// The workload and the moments come from one seed, printed first: TC_TEST_SEED=<seed> writes the same
// workload and draws the same moments again. TC_CRASH_CHANGES changes the size (for a quicker local run).

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { waitFor } from './support/ports.ts'
import { type Connector, type Stack, TOPIC, lsnValue, startConnector, startStack, waitCaughtUp } from './support/stack.ts'
import {
  LARGEST_TRANSACTION_ROWS,
  type ExpectedChange,
  type Verification,
  createVerificationSlot,
  expectedChanges,
  mulberry32,
  passing,
  startWorkload,
  verifyAll,
} from './support/verify.ts'

const SEED = Number(process.env.TC_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31))
const CHANGES = Number(process.env.TC_CRASH_CHANGES ?? 100_000)
const KILLS = 10
// The writer's pace: at most this many changes per second, and never more than AHEAD changes ahead of
// what the connector has published, so that the workload is written while the connector streams it and
// the kills fall while it is being written.
const WRITE_RATE = 2_000
const AHEAD = 10_000
// The moments: when the slot's confirmed LSN passes the WAL position at which these shares of the workload
// had been written (drawn, then sorted). So every run but the last gets somewhere before it is killed, and
// two moments close together kill a connector right after its restart, while it replays.
// Each moment falls before the last transaction, which can hold up to LARGEST_TRANSACTION_ROWS changes: a moment
// inside it would be confirmed only with the whole workload, and a short run (the binary's) would not get there.
const MOMENTS = { from: 0.02, to: Math.min(0.95, 1 - (LARGEST_TRANSACTION_ROWS + 1) / CHANGES) }
// The whole run's budget: the connector's pace on FerretDB decides most of it. Waits fail within it, with
// the connector's log, rather than the hook's timeout cutting the run short without one.
const BUDGET_MS = Number(process.env.TC_CRASH_BUDGET_MS ?? 900_000)
let deadline = 0
const remaining = () => Math.max(1_000, deadline - performance.now())

type Kill = {
  /** Changes written when the kill came, and whether the writer was still at it. */
  written: number
  writing: boolean
  /** What the killed process had confirmed, and the WAL position it still had to reach. */
  confirmedLsn: string
  walPosition: bigint
  /** The position the slot had to confirm before the kill: where the moment's change was written. */
  target: bigint
  signal: NodeJS.Signals | number | null
  restartMs: number
}

let stack: Stack
let connector: Connector
let expected: ExpectedChange[]
let verification: Verification
const kills: Kill[] = []
/** The WAL position once the whole workload was written. */
let workloadEnd = 0n

beforeAll(async () => {
  try {
    await run()
  } catch (error) {
    // What the connector said and how far it got are what a failure here needs.
    console.error(`crash-safety: failed with seed ${SEED}; the connector's log ends:\n${connector?.log().slice(-6_000)}`)
    const info = await connector?.info().catch((infoError) => String(infoError))
    console.error(`crash-safety: ${await stack?.pubsub.count(TOPIC)} events published; /info ${JSON.stringify(info)}`)
    throw error
  }
}, BUDGET_MS + 120_000)

async function walPosition(): Promise<bigint> {
  const [{ position }] = await stack.pg.sql<[{ position: string }]>`select pg_current_wal_insert_lsn()::text as position`
  return lsnValue(position)
}

async function confirmedPosition(): Promise<bigint> {
  const [slot] = await stack.pg.sql<{ lsn: string }[]>`select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = 'task_connector'`
  return slot ? lsnValue(slot.lsn) : 0n
}

async function run() {
  deadline = performance.now() + BUDGET_MS
  console.error(`crash-safety: seed ${SEED} (TC_TEST_SEED=${SEED} repeats this run), ${CHANGES} changes, ${KILLS} kills`)
  stack = await startStack()
  // The first start creates the slot and loads the (empty) tables; our slot starts where it streams from.
  connector = await startConnector(stack)
  await createVerificationSlot(stack.pg.sql)

  const draw = mulberry32(SEED ^ 0x5bd1e995)
  const moments = Array.from({ length: KILLS }, () => Math.round((MOMENTS.from + draw() * (MOMENTS.to - MOMENTS.from)) * CHANGES)).sort((a, b) => a - b)
  console.error(`crash-safety: kills once what was written before change ${moments.join(', ')} is confirmed`)
  const positions: bigint[] = []
  const workload = startWorkload(stack.pg.sql, {
    seed: SEED,
    changes: CHANGES,
    perSecond: WRITE_RATE,
    async pace(written) {
      while (positions.length < KILLS && written >= moments[positions.length]!) positions.push(await walPosition())
      while (written - (await stack.pubsub.count(TOPIC)) > AHEAD) await Bun.sleep(100)
    },
  })
  let writing = true
  workload.done.then(
    async () => {
      writing = false
      workloadEnd = await walPosition()
    },
    () => (writing = false),
  )

  for (const [kill, moment] of moments.entries()) {
    await waitFor(`change ${moment} written`, () => positions.length > kill, remaining(), 50)
    await waitFor(`change ${moment} confirmed`, async () => (await confirmedPosition()) >= positions[kill]!, remaining(), 50)
    const [info, position] = await Promise.all([connector.info(), walPosition()])
    const written = workload.changes
    const wasWriting = writing
    await connector.kill('SIGKILL')
    const signal = connector.process.signalCode
    const startedAt = performance.now()
    connector = await startConnector(stack)
    kills.push({ written, writing: wasWriting, confirmedLsn: info.confirmedLsn, walPosition: position, target: positions[kill]!, signal, restartMs: Math.round(performance.now() - startedAt) })
    console.error(`crash-safety: kill ${kill + 1} past change ${moment}, ${written} changes written, confirmed ${info.confirmedLsn} of ${position.toString(16)}; streaming again after ${kills.at(-1)!.restartMs} ms`)
  }

  const stats = await workload.done
  console.error(`crash-safety: workload ${JSON.stringify(stats)}`)
  await waitFor('the end of the workload', () => workloadEnd > 0n)
  await waitCaughtUp(stack, connector, remaining())
  expected = await expectedChanges(stack.pg.sql)
  verification = await verifyAll(stack, expected)
  const { published } = verification
  console.error(`crash-safety: ${expected.length} changes, ${published.messages} messages published (${published.duplicates} again after a kill)`)
}

afterAll(async () => {
  await connector?.kill()
  await stack?.stop()
}, 120_000)

describe(`extract-tasks killed ${KILLS} times during a ${CHANGES.toLocaleString('en')}-change workload`, () => {
  test('every kill hit a running connector with workload left to stream, and each restart resumed', () => {
    expect(kills).toHaveLength(KILLS)
    for (const kill of kills) {
      expect(kill.signal).toBe('SIGKILL')
      // Killed while the workload was being written, or before the connector had confirmed all of it.
      expect(kill.writing || lsnValue(kill.confirmedLsn) < workloadEnd).toBe(true)
      // And not before it had confirmed its share of the workload: each run got somewhere.
      expect(lsnValue(kill.confirmedLsn)).toBeGreaterThanOrEqual(kill.target)
    }
    // Resumed from the checkpoint: the slot was created and the tables loaded once, by the first start only.
    const log = connector.log()
    expect(log).not.toContain('created replication slot')
    expect(log).not.toContain('initial load')
    expect(log).toContain('streaming from slot task_connector')
  })

  test('the workload is what it should be: every change in our slot, of every kind', () => {
    expect(expected.length).toBe(CHANGES)
    const kinds = new Set(expected.map((change) => `${change.table} ${change.kind}`))
    for (const kind of ['tasks insert', 'tasks update', 'tasks delete', 'workspaces insert', 'workspaces update'])
      expect(kinds).toContain(kind)
  })

  test("every change's event reached Pub/Sub at least once, and repeats are the same event", () => {
    const { published } = verification
    expect(published).toEqual(passing(verification).published)
    expect(published.actual).toBe(CHANGES)
  })

  test('task_events holds exactly one document per change', () => {
    const { stored } = verification
    expect(stored).toEqual(passing(verification).stored)
    expect(stored.actual).toBe(CHANGES)
  })

  test("each event's first copy on Pub/Sub tells its change: every field (data, previous, changed, transition), attributes and ordering key", () => {
    expect(verification.publishedContent).toEqual(passing(verification).publishedContent)
    expect(verification.publishedContent.checked).toBe(CHANGES)
  })

  test('per ordering key, the first delivery of each event comes in id order', () => {
    expect(verification.order).toEqual(passing(verification).order)
    expect(verification.order.keys).toBeGreaterThan(0)
  })

  test('each stored event tells its change: every field, data, previous, changed and transition included', () => {
    expect(verification.history).toEqual(passing(verification).history)
    expect(verification.history.checked).toBe(CHANGES)
  })

  test('tasks and workspaces equal the tables row for row, with a tombstone for every deleted row', () => {
    expect(verification.tasks).toEqual(passing(verification).tasks)
    expect(verification.workspaces).toEqual(passing(verification).workspaces)
    expect(verification.tasks.rows).toBeGreaterThan(0)
  })
})
