// Outages mid-stream, with a steady write load running: the Pub/Sub emulator paused for 20 s, FerretDB
// stopped for 20 s, PostgreSQL restarted. Each runs on a fresh stack. Through each, nothing is lost and
// nothing applied twice (checked against a slot of our own), the slot is never confirmed past an event a
// sink does not hold, /info tells the outage, and the connector's memory stays flat while changes keep
// coming.
//
// What is correct while a sink is down: a batch is acknowledged only once both sinks hold it, so the
// confirmed LSN may still move for batches the failing sink took before it went down (their other write
// may still be under way), and then must stand still until the sink is back. For Pub/Sub that bound is
// exact: every event at or below a confirmed LSN must have been published before that LSN was seen. For
// MongoDB, in the FerretDB outage: every event at or below the slot's confirmed LSN is in task_events when it
// is read, sampled all along and with the connector frozen (SIGSTOP) as FerretDB comes back.
// Each event's content and the order of first deliveries per ordering key are checked as well (verify.ts).
// The workload is seeded (TC_TEST_SEED, printed first).

import { afterEach, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import postgres from 'postgres'
import { waitFor } from './support/ports.ts'
import { type Connector, type Stack, TOPIC, lsnValue, startConnector, startStack, waitCaughtUp } from './support/stack.ts'
import {
  ALL_IDS,
  type ExpectedChange,
  type Verification,
  createVerificationSlot,
  expectedChanges,
  passing,
  startWorkload,
  storedIds,
  verifyAll,
} from './support/verify.ts'

const SEED = Number(process.env.TC_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31))
const OUTAGE_MS = 20_000
/** /info is sampled this often (PostgreSQL's restart leaves the connector reconnecting for well under a second). */
const SAMPLE_EVERY_MS = 100
/** The slot's confirmed LSN is read this often, on a connection of its own, giving up on it after SLOT_READ_TIMEOUT_MS. */
const SLOT_EVERY_MS = 250
const SLOT_READ_TIMEOUT_MS = 500
/** Changes per second written throughout, in transactions of 1 to 20 rows. */
const WRITE_RATE = 400
/** Before an outage: the connector streams and has published this much. */
const WARM_UP = { ms: 5_000, events: 1_000 }
/** A sink's failure shows in /info within this long (the MongoDB driver gives up a server after 10 s). */
const DETECTED_WITHIN_MS = 12_000
/** Batches the sink took before it went down finish within this long; then the confirmed LSN stands. */
const SETTLED_WITHIN_MS = 10_000
/** After FerretDB's process is gone: time for an acknowledgement under way and a slot read to show it. */
const FERRETDB_SETTLED_MS = SLOT_EVERY_MS + SLOT_READ_TIMEOUT_MS
const RSS_GROWTH_LIMIT_MB = 100
const RECOVERY_MS = 60_000
const AFTER_OUTAGE_MS = 5_000
const TEST_TIMEOUT_MS = 300_000
/** The slot's confirmed LSN against task_events this often: each a scan of the ids stored so far, which FerretDB reads whole. */
const DURABLE_EVERY_MS = 5_000
/** A status update the connector sent before it was frozen reaches the slot within this long. */
const IN_FLIGHT_STATUS_MS = 300

console.error(`outages: seed ${SEED} (TC_TEST_SEED=${SEED} repeats the workload)`)

type Sample = {
  /** ms since the outage took effect (negative: before it). */
  at: number
  /** wall clock, for comparing with Pub/Sub publish times */
  time: number
  state: string
  failingSinks: string[]
  confirmed: bigint
  /** the slot's confirmed_flush_lsn as last read, and when; null while PostgreSQL does not answer */
  slot: bigint | null
  slotTime: number
  rssMb: number
  /** The connector stopped reading: it holds as many changes as it may. */
  readingPaused: boolean
}

/** The slot's confirmed LSN, and how many events at or below it task_events held right after it was read. */
type DurableSample = { at: number; slot: bigint; stored: number; frozen: boolean }

type Run = {
  stack: Stack
  connector: Connector
  samples: Sample[]
  /** ms from the start of the outage until it took effect (the server down) */
  effective: number
  expected: ExpectedChange[]
  verification: Verification
  /** Publish time of the first copy of each event id. */
  publishedAt: Map<string, number>
  durable: DurableSample[]
}

let open: { stack?: Stack; connector?: Connector } = {}
afterEach(async () => {
  await open.connector?.kill().catch(() => {})
  await open.stack?.stop()
  open = {}
}, 120_000)

const tail = (path: string) => {
  try {
    return readFileSync(path, 'utf8').slice(-3_000)
  } catch {
    return '(none)'
  }
}

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024

/** Reads the slot's confirmed LSN in the background on its own connection, so that a PostgreSQL that does not answer holds up nothing. */
function watchSlot(stack: Stack) {
  const sql = postgres({ ...stack.pg.options, max: 1, connect_timeout: 1, onnotice: () => {} })
  let latest: { slot: bigint | null; time: number } = { slot: null, time: Date.now() }
  let stopped = false
  const read = async () => {
    const [row] = await sql<{ lsn: string }[]>`select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = 'task_connector'`
    return row ? lsnValue(row.lsn) : null
  }
  const loop = (async () => {
    while (!stopped) {
      const time = Date.now()
      const slot = await Promise.race([read(), Bun.sleep(SLOT_READ_TIMEOUT_MS).then(() => null)]).catch(() => null)
      latest = { slot, time }
      await Bun.sleep(SLOT_EVERY_MS)
    }
  })()
  return {
    get latest() {
      return latest
    },
    async stop() {
      stopped = true
      await loop
      await sql.end({ timeout: 1 }).catch(() => {})
    },
  }
}

const hex16 = (lsn: bigint) => lsn.toString(16).toUpperCase().padStart(16, '0')

/**
 * Reads the slot's confirmed LSN, then at once the ids task_events holds at or below it. The confirmed LSN
 * only grows and task_events only gains: every event at or below the LSN read must be among those found.
 */
async function durableSample(stack: Stack, slotSql: postgres.Sql, since: number, frozen = false): Promise<DurableSample | null> {
  const [row] = await slotSql<{ lsn: string }[]>`select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = 'task_connector'`
  if (!row) return null
  const slot = lsnValue(row.lsn)
  const stored = (await storedIds(stack.db, { from: ALL_IDS.from, to: `${hex16(slot)}-FFFFFFFF` })).length
  return { at: Math.round(performance.now() - since), slot, stored, frozen }
}

/**
 * Durable samples in the background, one at a time, skipping those a server that is down cannot answer. One
 * whose MongoDB read waits for FerretDB to come back still holds: the read only comes later.
 */
function watchDurable(stack: Stack, samples: DurableSample[], since: () => number, sampling: boolean) {
  const sql = postgres({ ...stack.pg.options, max: 1, connect_timeout: 1, onnotice: () => {} })
  let stopped = !sampling
  const loop = (async () => {
    while (!stopped) {
      const taken = await durableSample(stack, sql, since()).catch(() => null)
      if (taken && !stopped) samples.push(taken)
      await Bun.sleep(DURABLE_EVERY_MS)
    }
  })()
  return {
    sql,
    async stop() {
      stopped = true
      await loop
      await sql.end({ timeout: 1 }).catch(() => {})
    },
  }
}

async function sample(connector: Connector, slot: ReturnType<typeof watchSlot>, since: number): Promise<Sample> {
  const info = await connector.info()
  const { slot: slotLsn, time: slotTime } = slot.latest
  return {
    at: Math.round(performance.now() - since),
    time: Date.now(),
    state: info.state,
    failingSinks: info.failingSinks ?? [],
    confirmed: lsnValue(info.confirmedLsn),
    slot: slotLsn,
    slotTime,
    rssMb: Math.round(rssMb(connector.process.pid)),
    readingPaused: info.readingPaused,
  }
}

/**
 * A fresh stack and connector under a steady load; `outage` runs mid-stream while /info, the slot and the
 * connector's RSS are sampled, until the connector streams again; then the load goes on a little, stops,
 * and everything is checked. `tookEffect` marks when the server is down.
 */
async function withOutage(
  name: string,
  outage: (stack: Stack, tookEffect: () => void, frozen: (take: () => Promise<void>) => Promise<void>) => Promise<void>,
  { sampleDurable = false } = {},
): Promise<Run> {
  const stack = await startStack()
  open.stack = stack
  const connector = await startConnector(stack)
  open.connector = connector
  await createVerificationSlot(stack.pg.sql)
  const workload = startWorkload(stack.pg.sql, {
    seed: SEED,
    perSecond: WRITE_RATE,
    transactionRows: (random) => 1 + Math.floor(random() * 20),
    survive: true,
  })
  const slot = watchSlot(stack)
  const durable: DurableSample[] = []
  let since = performance.now()
  // Only where MongoDB is the sink at fault: each sample makes FerretDB read every event, a load the other outages need not carry.
  const durableWatch = watchDurable(stack, durable, () => since, sampleDurable)
  /**
   * Runs `take` with the connector frozen (SIGSTOP), then takes a durable sample before it goes on: while it
   * cannot write, what task_events holds is what it held when it was frozen.
   */
  const frozen = async (take: () => Promise<void>) => {
    connector.process.kill('SIGSTOP')
    try {
      await take()
      await Bun.sleep(IN_FLIGHT_STATUS_MS)
      const taken = await durableSample(stack, durableWatch.sql, since, true)
      if (taken) durable.push(taken)
    } finally {
      connector.process.kill('SIGCONT')
    }
  }
  try {
    await Bun.sleep(WARM_UP.ms)
    await waitFor(`${WARM_UP.events} events published`, async () => (await stack.pubsub.count(TOPIC)) >= WARM_UP.events, 60_000)

    const samples: Sample[] = []
    since = performance.now()
    samples.push(await sample(connector, slot, since))
    let over = false
    let effective = 0
    const sampling = (async () => {
      while (!over) {
        await Bun.sleep(SAMPLE_EVERY_MS)
        if (!over) samples.push(await sample(connector, slot, since))
      }
    })()
    since = performance.now()
    // Sampled until the connector streams again: it may notice a lost connection only after the server is back.
    try {
      await outage(stack, () => (effective = Math.round(performance.now() - since)), frozen)
      await waitFor(`the connector streaming again after ${name}`, async () => {
        const info = await connector.info()
        return info.state === 'streaming' && !info.failingSinks?.length
      }, RECOVERY_MS)
    } finally {
      over = true
      await sampling
    }
    samples.push(await sample(connector, slot, since))
    await Bun.sleep(AFTER_OUTAGE_MS)
    const stats = await workload.stop()
    await waitCaughtUp(stack, connector, 180_000)
    await durableWatch.stop()
    await Bun.sleep(SLOT_EVERY_MS + SLOT_READ_TIMEOUT_MS)
    samples.push(await sample(connector, slot, since))
    const expected = await expectedChanges(stack.pg.sql)
    const verification = await verifyAll(stack, expected)
    const publishedAt = new Map<string, number>()
    for (const message of await stack.pubsub.messages(TOPIC)) {
      const id = message.attributes.eventId!
      if (!publishedAt.has(id)) publishedAt.set(id, message.publishTime.getTime())
    }
    console.error(`outages: ${name}: took effect at ${effective} ms; workload ${JSON.stringify(stats)}; ${durable.length} durable samples ` +
      `(${durable.map((s) => `${hex(s.slot)}${s.frozen ? ' frozen' : ''}: ${s.stored}`).join(', ')}); ${samples.length} samples, as they changed: ${changes(samples).map(describeSample).join(' | ')}`)
    return { stack, connector, samples, effective, expected, verification, publishedAt, durable }
  } catch (error) {
    console.error(`outages: ${name} failed; the connector's log ends:\n${connector.log().slice(-6_000)}`)
    console.error(`outages: FerretDB's log ends:\n${tail(stack.mongo.logPath)}\nthe emulator's log ends:\n${tail(stack.pubsub.logPath)}`)
    throw error
  } finally {
    await workload.stop().catch(() => {})
    await slot.stop()
    await durableWatch.stop()
  }
}

const hex = (lsn: bigint | null) => (lsn === null ? '-' : `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`)
/** The samples where the state, the failing sinks or an LSN changed. */
const changes = (samples: Sample[]) =>
  samples.filter((s, i) => {
    const before = samples[i - 1]
    return !before || before.state !== s.state || `${before.failingSinks}` !== `${s.failingSinks}` || before.confirmed !== s.confirmed || before.slot !== s.slot
  })
const describeSample = (s: Sample) =>
  `${s.at}ms (${new Date(s.time).toISOString().slice(11, 23)}) ${s.state}${s.failingSinks.length ? `[${s.failingSinks}]` : ''} ${hex(s.confirmed)} slot ${hex(s.slot)} ${s.rssMb}MB`

/** Runs the checks; when one fails, shows what the connector logged (beyond routine lines) first. */
function checked(run: Run, name: string, checks: () => void) {
  try {
    checks()
  } catch (error) {
    const lines = run.connector.log().split('\n').filter((line) => line && !line.includes('"level":"info"'))
    console.error(`outages: ${name}: the connector's warnings and errors (${lines.length}):\n${lines.slice(-40).join('\n')}`)
    throw error
  }
}

/** The samples taken while the outage lasted, after the one taken just before it. */
const during = (run: Run) => run.samples.filter((s) => s.at >= 0 && s.at <= OUTAGE_MS)

/** Nothing lost, nothing applied twice, and /info streaming again. */
function expectWhole(run: Run) {
  expect(run.verification).toEqual(passing(run.verification))
  expect(run.expected.length).toBeGreaterThan(WARM_UP.events)
  expect(run.samples.at(-1)!.state).toBe('streaming')
}

/** Every event at or below a confirmed LSN had been published when that LSN was read (both /info and the slot). */
function expectNeverConfirmedUnpublished(run: Run) {
  const byCommit = [...run.expected].sort((a, b) => (a.id < b.id ? -1 : 1))
  const violations: string[] = []
  for (const s of changes(run.samples)) {
    for (const [confirmed, time] of [[s.confirmed, s.time], [s.slot, s.slotTime]] as const) {
      if (confirmed === null) continue
      for (const change of byCommit) {
        if (lsnValue(change.lsn) > confirmed) break
        const at = run.publishedAt.get(change.id)
        if (at === undefined || at > time) violations.push(`${change.id} confirmed by ${hex(confirmed)} at ${s.at} ms, published ${at === undefined ? 'never' : `${at - time} ms later`}`)
      }
    }
  }
  expect(violations.slice(0, 5)).toEqual([])
}

/**
 * MongoDB durable before the slot is confirmed: every event at or below a sampled confirmed LSN was in
 * task_events right after the sample. Exact counts suffice: task_events ends up holding exactly the expected
 * events (expectWhole), so those found at or below an LSN are a subset of those expected there.
 */
function expectNeverConfirmedUnstored(run: Run) {
  const violations: string[] = []
  for (const s of run.durable) {
    const expected = run.expected.filter((change) => lsnValue(change.lsn) <= s.slot).length
    if (s.stored < expected) violations.push(`slot confirmed ${hex(s.slot)} at ${s.at} ms${s.frozen ? ' (connector frozen)' : ''}: ${expected - s.stored} of its ${expected} events not in task_events`)
  }
  expect(violations.slice(0, 5)).toEqual([])
  expect(run.durable.length).toBeGreaterThanOrEqual(3)
}

/** While the sink is down: it is named in /info soon and stays so, the confirmed LSN settles and stands, memory stays flat. */
function expectHeldWhileDown(run: Run, sink: 'pubsub' | 'mongo') {
  const samples = during(run)
  const detected = samples.findIndex((s) => s.state === 'reconnecting' && s.failingSinks.includes(sink))
  expect(detected).toBeGreaterThanOrEqual(0)
  expect(samples[detected]!.at).toBeLessThanOrEqual(DETECTED_WITHIN_MS)
  for (const s of samples.slice(detected)) expect({ at: s.at, state: s.state, failing: s.failingSinks.includes(sink) }).toEqual({ at: s.at, state: 'reconnecting', failing: true })

  // Settled: from SETTLED_WITHIN_MS on, both the connector's and the slot's confirmed LSN stand still.
  const settled = samples.filter((s) => s.at >= SETTLED_WITHIN_MS)
  expect(settled.length).toBeGreaterThanOrEqual(5)
  const last = samples.at(-1)!
  for (const s of settled) expect({ at: s.at, confirmed: hex(s.confirmed), slot: hex(s.slot) }).toEqual({ at: s.at, confirmed: hex(last.confirmed), slot: hex(last.slot) })
  // The slot holds no more than the connector acknowledged.
  expect(last.slot).not.toBeNull()
  expect(last.slot!).toBeLessThanOrEqual(last.confirmed)
  // The writes went on: the connector filled up what it may hold and stopped reading (backpressure).
  expect(samples.some((s) => s.readingPaused)).toBe(true)

  expectFlatMemory(run)
}

function expectFlatMemory(run: Run) {
  const samples = during(run)
  const growth = Math.max(...samples.map((s) => s.rssMb)) - samples[0]!.rssMb
  expect(growth).toBeLessThan(RSS_GROWTH_LIMIT_MB)
}

describe('extract-tasks through outages, with writes going on', () => {
  test(
    'Pub/Sub down for 20 s: the stream is held, the slot not confirmed past unpublished events, nothing lost',
    async () => {
      const run = await withOutage('Pub/Sub paused', async (stack, tookEffect) => {
        await stack.pubsub.pause()
        tookEffect()
        await Bun.sleep(OUTAGE_MS)
        await stack.pubsub.resume()
      })
      checked(run, 'Pub/Sub paused', () => {
        expectHeldWhileDown(run, 'pubsub')
        expectNeverConfirmedUnpublished(run)
        expectWhole(run)
      })
    },
    TEST_TIMEOUT_MS,
  )

  test(
    'FerretDB down for 20 s: the stream is held, the confirmed LSN stands and never passes task_events, nothing lost or applied twice',
    async () => {
      const run = await withOutage('FerretDB stopped', async (stack, tookEffect, frozen) => {
        await stack.mongo.stop()
        tookEffect()
        await Bun.sleep(OUTAGE_MS)
        // The slot as the outage left it, against task_events as the outage left it: the connector is frozen
        // from before FerretDB is back until the sample is taken.
        await frozen(() => stack.mongo.restart())
      }, { sampleDurable: true })
      checked(run, 'FerretDB stopped', () => {
        expectHeldWhileDown(run, 'mongo')
        // Once FerretDB is gone no write can succeed, checkpoints included: nothing moves once the last
        // acknowledgement has reached the slot (a status update goes out within 50 ms of a move).
        const samples = during(run).filter((s) => s.at >= run.effective + FERRETDB_SETTLED_MS)
        for (const s of samples) expect({ at: s.at, confirmed: hex(s.confirmed) }).toEqual({ at: s.at, confirmed: hex(samples[0]!.confirmed) })
        expectNeverConfirmedUnpublished(run)
        expect(run.durable.filter((s) => s.frozen)).toHaveLength(1)
        expectNeverConfirmedUnstored(run)
        expectWhole(run)
      })
    },
    TEST_TIMEOUT_MS,
  )

  test(
    'PostgreSQL restarted: the connector reconnects and resumes, the confirmed LSN never goes back, nothing lost',
    async () => {
      const run = await withOutage('PostgreSQL restarted', async (stack, tookEffect) => {
        tookEffect()
        await stack.pg.restart()
        // Over once the connector streams from the new server: the slot is active again.
        await waitFor('the connector to stream from the restarted server', async () => {
          const [row] = await stack.pg.sql<{ active: boolean }[]>`select active from pg_replication_slots where slot_name = 'task_connector'`
          return row?.active === true
        }, RECOVERY_MS, 100)
      })
      checked(run, 'PostgreSQL restarted', () => {
        // It noticed: /info said reconnecting, until it streamed again.
        const states = run.samples.map((s) => s.state)
        expect(states).toContain('reconnecting')
        expect(states.at(-1)).toBe('streaming')
        // Never backwards in the connector; the slot, once PostgreSQL answers again, never ahead of it.
        for (let i = 1; i < run.samples.length; i++) expect(run.samples[i]!.confirmed).toBeGreaterThanOrEqual(run.samples[i - 1]!.confirmed)
        for (const s of run.samples) if (s.slot !== null) expect(s.slot).toBeLessThanOrEqual(s.confirmed)
        expectNeverConfirmedUnpublished(run)
        expectFlatMemory(run)
        expectWhole(run)
      })
    },
    TEST_TIMEOUT_MS,
  )
})
