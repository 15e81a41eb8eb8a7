// bench:pipeline — the whole connector (slot → events → MongoDB and Pub/Sub → checkpoint) against what its
// parts allow: pg_recvlogical reading the same slot contents, and the run's FerretDB and Pub/Sub emulator driven
// straight with the connector's own documents and messages (pipeline-ceiling.ts). Then the delay from commit to
// publish under a steady load of single-row transactions.
//
// Throughput: every contender's slot is created before the workload (workload.ts), so all start at the
// same LSN; the workload ends with a non-transactional logical message of the connector's prefix, whose LSN is
// the end. The connector counts from its spawn until PostgreSQL has its slot confirmed at the end (which it
// confirms only once both sinks acknowledged everything before), each round with a fresh slot, database and
// topic; then, off the clock, both sinks must hold exactly the workload's events. pg_recvlogical counts from its
// spawn to its exit at --endpos, and its slot must then be confirmed at the end. Rounds alternate the contenders (connector, pg_recvlogical, MongoDB ceiling, Pub/Sub ceiling)
// and the figures are medians. The default size keeps the run under 10 minutes with FerretDB as the MongoDB.
// Latency: a fresh connector, a light load first (what our own path adds while the servers keep up), then the
// target load (by default half the bottleneck measured just before); per event, the emulator's publishTime
// (pstest stamps it on receipt) minus the event's commitTime, both this machine's clock. A load the servers cannot absorb shows up as a delay that grows for the whole phase.
// Progress on stderr; the last line on stdout is the JSON report of /work/shared/benchmarks.md.
//   bun scripts/bench/pipeline.ts [--rounds 3] [--changes 12000] [--load-tx-per-s half|N] [--latency-seconds 20]
//     [--low-load-tx-per-s 100] [--latency-mix mixed|inserts] [--cpu-prof-dir DIR]

import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { BSON } from 'mongodb'
import postgres from 'postgres'
import { MESSAGE_PREFIX, TRACKED_TABLES } from '../../src/extract-tasks.ts'
import { pluginOptions } from '../../src/replication/source.ts'
import { peakRssMb } from '../../test/support/memory.ts'
import { tempDir } from '../../test/support/server-process.ts'
import { type Connector, type Stack, lsnValue, startConnector, startStack, waitCaughtUp } from '../../test/support/stack.ts'
import { storedIds } from '../../test/support/verify.ts'
import { createWorkspace } from '../../test/support/workspace.ts'
import { type LoadMix, runPacedLoad } from './pipeline-load.ts'
import { planWorkload, prepareWorkload, writeWorkload } from './workload.ts'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    changes: { type: 'string', default: '12000' },
    // The latency's target load: `half` is half the throughput phase's bottleneck, whatever the servers' speed.
    'load-tx-per-s': { type: 'string', default: 'half' },
    'latency-seconds': { type: 'string', default: '20' },
    // A first, light load: the delay our own path adds while the servers keep up.
    'low-load-tx-per-s': { type: 'string', default: '100' },
    'low-load-seconds': { type: 'string', default: '10' },
    // Excluded from the figures: the connector's first batches, the load's own start.
    'warmup-seconds': { type: 'string', default: '3' },
    // The load's commits wait for their WAL to be written (PostgreSQL's default, and production's). The test
    // cluster runs with synchronous_commit off, which leaves commits to the WAL writer's 200 ms rounds: the
    // walsender decodes only written WAL, so that setting alone would add up to 200 ms to every delay.
    'load-synchronous-commit': { type: 'string', default: 'on' },
    // inserts: every transaction inserts a task; mixed: every other one updates a task inserted before.
    'latency-mix': { type: 'string', default: 'mixed' },
    // Writes a CPU profile of the throughput rounds' connector (bun --cpu-prof) into this directory.
    'cpu-prof-dir': { type: 'string' },
  },
})
const ROUNDS = Number(values.rounds)
const MIN_CHANGES = Number(values.changes)
// Transactions of 1 to 1,000 rows: FerretDB, not the stream, sets the pace here.
const LARGEST_TRANSACTION_ROWS = 1_000
const LOAD_TX_PER_S = values['load-tx-per-s'] === 'half' ? null : Number(values['load-tx-per-s'])
const LATENCY_SECONDS = Number(values['latency-seconds'])
const WARMUP_SECONDS = Number(values['warmup-seconds'])
const LOW_LOAD_TX_PER_S = Number(values['low-load-tx-per-s'])
const LOW_LOAD_SECONDS = Number(values['low-load-seconds'])
const LATENCY_MIX = values['latency-mix'] as LoadMix
if (LATENCY_MIX !== 'inserts' && LATENCY_MIX !== 'mixed') throw new Error(`--latency-mix must be inserts or mixed, not ${LATENCY_MIX}`)
const PG_BIN = process.env.TC_PG_BIN ?? '/usr/lib/postgresql/15/bin'
const CEILING = join(import.meta.dir, 'pipeline-ceiling.ts')
const PROJECT = 'test-project'
const SCHEMA = 'public'
// A contender that takes this long is stuck, not slow.
const RUN_TIMEOUT_MS = 300_000
// A connector whose confirmed LSN stays put this long is stuck (a sink that never answers), not slow.
const STALL_MS = 60_000
// Often enough to time runs of seconds; one catalog query to PostgreSQL each, nothing to the sinks.
const SLOT_POLL_MS = 20
const CLOCK_TICKS_PER_S = 100

const log = (line: string) => process.stderr.write(line + '\n')
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
/** Nearest-rank percentile. */
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
const round = (x: number, digits = 0) => Number(x.toFixed(digits))

let stack = null as Stack | null
const children = new Set<Bun.Subprocess>()
// The stack's servers go at exit (test/support); the processes started here go with them.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

/** CPU time (user + system) a live process has used, from /proc. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S) * 1000
}

type ConnectorRun = { ms: number; startupMs: number; peakRssMb: number; cpuMs: number }

async function startTracked(stack: Stack, flags: string[], env: Record<string, string> = {}): Promise<Connector> {
  const connector = await startConnector(stack, { flags, env })
  children.add(connector.process)
  return connector
}

async function stopTracked(connector: Connector) {
  const code = await connector.kill('SIGTERM')
  children.delete(connector.process)
  if (code !== 0 && code !== 143) log(`connector exited with ${code}:\n${connector.log().slice(-2000)}`)
}

/** How far the slot is confirmed: PostgreSQL's word, read from its catalog, touching neither sink nor the connector. */
async function confirmedFlush(stack: Stack, slot: string): Promise<bigint> {
  const [row] = await stack.pg.sql<{ lsn: string | null }[]>`select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = ${slot}`
  return row?.lsn ? lsnValue(row.lsn) : 0n
}

/** After the clock: both sinks hold exactly the workload's events, each once, the same ids in each. */
async function expectWorkload(stack: Stack, round: number, events: number) {
  const published = new Set<string>()
  let messages = 0
  await stack.pubsub.eachMessage(`bench_${round}`, (message) => {
    messages++
    published.add(message.attributes.eventId!)
  })
  const stored = await storedIds(stack.mongoClient.db(`bench_${round}`))
  const missing = stored.filter((id) => !published.has(id)).length
  if (stored.length !== events || published.size !== events || messages !== events || missing)
    throw new Error(`connector (round ${round}) stored ${stored.length} events and published ${messages} messages of ${published.size} ids ` +
      `(${missing} stored ids not published), not the workload's ${events}`)
}

/**
 * The connector from its spawn until PostgreSQL has the slot confirmed at the workload's end. The connector
 * confirms only what both sinks acknowledged, so that is the moment they hold every event; watching the slot
 * costs the sinks nothing, so the run is loaded no more than the ceilings' are. The sinks are checked after
 * the clock, exactly: a run that does not pass is an error, not a figure. The slot hears of a confirmation
 * at most ACK_STATUS_DELAY_MS (50 ms) after it, which the clock keeps.
 */
async function runConnector(stack: Stack, round: number, slot: string, end: bigint, events: number): Promise<ConnectorRun> {
  const profile = values['cpu-prof-dir']
  const started = performance.now()
  const connector = await startTracked(
    stack,
    [
      '--slot', slot, '--mongo-db', `bench_${round}`, '--topic', `bench_${round}`, '--create-topic',
      '--initial-load', 'never', '--heartbeat-interval', '0', '--log-level', 'warn',
    ],
    profile ? { BUN_OPTIONS: `--cpu-prof --cpu-prof-md --cpu-prof-dir=${profile} --cpu-prof-name=connector-round-${round}` } : {},
  )
  const startupMs = performance.now() - started
  const pid = connector.process.pid
  const deadline = started + RUN_TIMEOUT_MS
  let progress = { confirmed: 0n, at: performance.now() }
  for (;;) {
    const confirmed = await confirmedFlush(stack, slot)
    if (confirmed >= end) break
    if (connector.process.exitCode !== null) throw new Error(`connector (round ${round}) exited with ${connector.process.exitCode}:\n${connector.log().slice(-2000)}`)
    if (confirmed !== progress.confirmed) progress = { confirmed, at: performance.now() }
    const stalled = performance.now() - progress.at > STALL_MS
    if (stalled || performance.now() > deadline)
      throw new Error(`connector (round ${round}) ${stalled ? `confirmed nothing new for ${STALL_MS / 1000} s` : `did not confirm the end in ${RUN_TIMEOUT_MS / 1000} s`}; ` +
        `/info: ${JSON.stringify(await connector.info().catch(() => null))}\n${connector.log().slice(-2000)}`)
    await Bun.sleep(SLOT_POLL_MS)
  }
  const ms = performance.now() - started
  const run = { ms, startupMs, peakRssMb: peakRssMb(pid), cpuMs: cpuMs(pid) }
  await expectWorkload(stack, round, events)
  await stopTracked(connector)
  return run
}

/** Runs a process to its exit: wall time from spawn, and its last stdout line. */
async function runProcess(what: string, command: string[]): Promise<{ ms: number; cpuMs: number; last: string }> {
  const started = performance.now()
  const child = Bun.spawn(command, { stdout: 'pipe', stderr: 'pipe', timeout: RUN_TIMEOUT_MS, killSignal: 'SIGKILL' })
  children.add(child)
  const [exitCode, stdout, stderr] = await Promise.all([child.exited, new Response(child.stdout).text(), new Response(child.stderr).text()])
  const ms = performance.now() - started
  children.delete(child)
  if (exitCode !== 0) throw new Error(`${what} exited with ${exitCode ?? child.signalCode}: ${stderr.trim().slice(-2000) || stdout.trim().slice(-2000)}`)
  const usage = child.resourceUsage()
  return { ms, cpuMs: usage ? Number(usage.cpuTime.total) / 1000 : NaN, last: stdout.trim().split('\n').at(-1) ?? '' }
}

/** pg_recvlogical writes to /dev/null: its final status update, at --endpos, is what shows it read to the end. */
async function expectReadToEnd(stack: Stack, slot: string, end: string) {
  const [row] = await stack.pg.sql<{ lsn: string }[]>`select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = ${slot}`
  if (!row || lsnValue(row.lsn) < lsnValue(end)) throw new Error(`pg_recvlogical exited with slot ${slot} confirmed at ${row?.lsn}, short of ${end}`)
}

function recvlogicalCommand(stack: Stack, slot: string, end: string): string[] {
  // The very options our source sends; it stops on its own at the end LSN.
  return [
    join(PG_BIN, 'pg_recvlogical'), '-h', stack.pg.host, '-p', String(stack.pg.port), '-U', stack.pg.user, '-d', stack.pg.database,
    '--slot', slot, '--start', '--endpos', end, '-f', '/dev/null', '--no-loop', '-F', '0', '-s', '10',
    ...pluginOptions({ schema: SCHEMA, tables: TRACKED_TABLES, messagePrefix: MESSAGE_PREFIX }).flatMap(([name, value]) => ['-o', `${name}=${value}`]),
  ]
}

/** The connector's documents and messages of one round, as the ceilings replay them. */
async function exportRound(stack: Stack, round: number, dir: string, events: number) {
  const documents = await stack.mongoClient.db(`bench_${round}`).collection('task_events').find().toArray()
  documents.sort((a, b) => (a._id < b._id ? -1 : a._id > b._id ? 1 : 0))
  const eventsFile = join(dir, 'events.bson')
  writeFileSync(eventsFile, Buffer.concat(documents.map((document) => BSON.serialize(document))))
  const messages = await stack.pubsub.messages(`bench_${round}`)
  if (documents.length !== events || messages.length !== events)
    throw new Error(`round ${round} left ${documents.length} documents and ${messages.length} messages, not ${events} of each`)
  const messagesFile = join(dir, 'messages.jsonl')
  writeFileSync(
    messagesFile,
    messages.map((message) => JSON.stringify({ data: message.data.toString('base64'), attributes: message.attributes, orderingKey: message.orderingKey })).join('\n'),
  )
  const bytes = messages.reduce((sum, message) => sum + message.data.length, 0)
  log(`exported ${documents.length} event documents and ${messages.length} messages (${Math.round(bytes / messages.length)} bytes of data each on average, ` +
    `${new Set(messages.map((message) => message.orderingKey)).size} ordering keys)`)
  return { eventsFile, messagesFile }
}

async function throughput(stack: Stack) {
  const plan = planWorkload(MIN_CHANGES, { maxRows: LARGEST_TRANSACTION_ROWS })
  const events = plan.changes
  log(`workload: ${events} row changes in ${plan.transactions.length} transactions (largest ${plan.largest} rows)`)
  const { sql } = stack.pg
  await prepareWorkload(sql)
  const slots = Array.from({ length: ROUNDS }, (_, r) => ({ connector: `bench_r${r + 1}_connector`, recvlogical: `bench_r${r + 1}_recvlogical` }))
  for (const slot of slots.flatMap((pair) => Object.values(pair))) await sql`select pg_create_logical_replication_slot(${slot}, 'wal2json')`
  log(`created ${ROUNDS * 2} slots before the workload`)

  const started = performance.now()
  await writeWorkload(sql, plan)
  // The end: a message of the connector's own prefix (as its heartbeat), which every contender receives.
  const [marker] = await sql`select pg_logical_emit_message(false, ${MESSAGE_PREFIX}, 'bench-end')::text as lsn`
  const end = marker!.lsn as string
  // Walsenders send only flushed WAL; with synchronous_commit off the WAL writer gets there within moments.
  for (;;) {
    const [row] = await sql`select pg_current_wal_flush_lsn()::text as flushed`
    if (lsnValue(row!.flushed) >= lsnValue(end)) break
    await Bun.sleep(20)
  }
  log(`wrote the workload in ${((performance.now() - started) / 1000).toFixed(1)} s; end LSN ${end}`)

  const dir = tempDir('bench-pipeline-')
  let files: { eventsFile: string; messagesFile: string } | null = null
  const runs = { connector: [] as ConnectorRun[], recvlogical: [] as number[], mongo: [] as number[], pubsub: [] as number[] }
  const rate = (ms: number) => Math.round(events / (ms / 1000))
  for (let r = 1; r <= ROUNDS; r++) {
    const connector = await runConnector(stack, r, slots[r - 1]!.connector, lsnValue(end), events)
    runs.connector.push(connector)
    log(`round ${r} connector      ${(connector.ms / 1000).toFixed(2)} s  ${rate(connector.ms)} events/s  (streaming after ${Math.round(connector.startupMs)} ms)  ` +
      `cpu ${(connector.cpuMs / 1000).toFixed(2)} s  peak RSS ${connector.peakRssMb} MB`)

    const recvlogical = await runProcess(`pg_recvlogical (round ${r})`, recvlogicalCommand(stack, slots[r - 1]!.recvlogical, end))
    await expectReadToEnd(stack, slots[r - 1]!.recvlogical, end)
    runs.recvlogical.push(recvlogical.ms)
    log(`round ${r} pg_recvlogical ${(recvlogical.ms / 1000).toFixed(2)} s  ${rate(recvlogical.ms)} events/s  cpu ${(recvlogical.cpuMs / 1000).toFixed(2)} s`)

    files ??= await exportRound(stack, r, dir, events)
    await stack.mongoClient.db(`bench_${r}`).dropDatabase()

    const mongo = await runProcess(`MongoDB ceiling (round ${r})`, [
      'bun', CEILING, 'mongo', '--url', stack.mongo.url, '--db', `bench_ceiling_${r}`, '--file', files.eventsFile,
    ])
    const mongoMs = (JSON.parse(mongo.last) as { ms: number }).ms
    runs.mongo.push(mongoMs)
    log(`round ${r} MongoDB ceiling ${(mongoMs / 1000).toFixed(2)} s  ${rate(mongoMs)} events/s`)
    await stack.mongoClient.db(`bench_ceiling_${r}`).dropDatabase()

    const pubsub = await runProcess(`Pub/Sub ceiling (round ${r})`, [
      'bun', CEILING, 'pubsub', '--host', stack.pubsub.host, '--project', PROJECT, '--topic', `bench_ceiling_${r}`, '--file', files.messagesFile,
    ])
    const pubsubMs = (JSON.parse(pubsub.last) as { ms: number }).ms
    runs.pubsub.push(pubsubMs)
    log(`round ${r} Pub/Sub ceiling ${(pubsubMs / 1000).toFixed(2)} s  ${rate(pubsubMs)} events/s`)
  }

  return {
    events,
    transactions: plan.transactions.length,
    e2e: events / (median(runs.connector.map((run) => run.ms)) / 1000),
    recvlogical: events / (median(runs.recvlogical) / 1000),
    mongo: events / (median(runs.mongo) / 1000),
    pubsub: events / (median(runs.pubsub) / 1000),
    peakRssMb: Math.max(...runs.connector.map((run) => run.peakRssMb)),
    cpuMs: median(runs.connector.map((run) => run.cpuMs)),
    startupMs: median(runs.connector.map((run) => run.startupMs)),
    fromStreaming: events / (median(runs.connector.map((run) => run.ms - run.startupMs)) / 1000),
  }
}

type Phase = { rate: number; seconds: number }
type Delays = { p50: number; p90: number; p99: number; max: number; events: number; achieved: number; maxScheduleLagMs: number }

/** A fresh connector, then each phase's load in turn, each caught up with before the next; delays per phase. */
async function latency(stack: Stack, phases: Phase[]) {
  const topic = 'bench_latency'
  const connector = await startTracked(stack, [
    '--slot', 'bench_latency', '--mongo-db', 'bench_latency', '--topic', topic, '--create-topic', '--initial-load', 'never', '--log-level', 'warn',
  ])
  const load = postgres({ ...stack.pg.options, max: 8, connection: { synchronous_commit: values['load-synchronous-commit']! } })
  try {
    const workspaceId = await createWorkspace(load, 'latency')
    const windows: { from: number; to: number; maxScheduleLagMs: number }[] = []
    for (const { rate, seconds } of phases) {
      log(`latency: ${rate} single-row transactions/s (${LATENCY_MIX}) for ${WARMUP_SECONDS + seconds} s (the first ${WARMUP_SECONDS} s not counted), ` +
        `synchronous_commit ${values['load-synchronous-commit']}`)
      const result = await runPacedLoad(load, workspaceId, rate, WARMUP_SECONDS + seconds, LATENCY_MIX)
      windows.push({ from: result.startedAt + WARMUP_SECONDS * 1000, to: result.endedAt, maxScheduleLagMs: result.maxScheduleLagMs })
      const caughtUp = performance.now()
      await waitCaughtUp(stack, connector, RUN_TIMEOUT_MS)
      log(`latency: caught up ${((performance.now() - caughtUp) / 1000).toFixed(1)} s after the load stopped`)
    }
    const pid = connector.process.pid
    const rss = peakRssMb(pid)
    const cpu = cpuMs(pid)
    await stopTracked(connector)

    const delays: number[][] = phases.map(() => [])
    for (const message of await stack.pubsub.messages(topic)) {
      const event = JSON.parse(message.data.toString()) as { type: string; workspaceId: string | null; commitTime: string }
      if (event.workspaceId !== workspaceId || !event.type.startsWith('task.')) continue
      const committedAt = Date.parse(event.commitTime)
      const phase = windows.findIndex((window) => committedAt >= window.from && committedAt <= window.to)
      if (phase >= 0) delays[phase]!.push(message.publishTime.getTime() - committedAt)
    }
    const results = phases.map(({ rate }, index): Delays => {
      const sorted = delays[index]!.sort((a, b) => a - b)
      if (!sorted.length) throw new Error(`no event of the ${rate} tx/s load was published`)
      const p = (q: number) => percentile(sorted, q)
      const window = windows[index]!
      const result = {
        p50: p(50), p90: p(90), p99: p(99), max: sorted.at(-1)!, events: sorted.length,
        achieved: sorted.length / ((window.to - window.from) / 1000), maxScheduleLagMs: window.maxScheduleLagMs,
      }
      log(`latency at ${rate} tx/s: ${result.events} events, ${Math.round(result.achieved)} tx/s achieved; commit to publish p50 ${result.p50} ms, ` +
        `p90 ${result.p90} ms, p99 ${result.p99} ms, max ${result.max} ms; load schedule lag at worst ${Math.round(result.maxScheduleLagMs)} ms`)
      return result
    })
    log(`latency connector: cpu ${(cpu / 1000).toFixed(1)} s, peak RSS ${rss} MB`)
    return { phases: results, peakRssMb: rss, cpuMs: cpu }
  } finally {
    await load.end({ timeout: 1 })
  }
}

async function main() {
  const benchStarted = performance.now()
  log('starting PostgreSQL, FerretDB and the Pub/Sub emulator')
  stack = await startStack()
  const tp = await throughput(stack)
  const bottleneck = Math.min(tp.recvlogical, tp.mongo, tp.pubsub)
  const loadTxPerS = LOAD_TX_PER_S ?? Math.round(bottleneck / 2)
  // A light load first, one the stand-in servers keep up with, then the target load.
  const lat = await latency(stack, [{ rate: LOW_LOAD_TX_PER_S, seconds: LOW_LOAD_SECONDS }, { rate: loadTxPerS, seconds: LATENCY_SECONDS }])
  const [low, target] = lat.phases as [Delays, Delays]
  log(`total ${((performance.now() - benchStarted) / 1000).toFixed(0)} s`)
  return {
    bench: 'pipeline',
    events: tp.events,
    rounds: ROUNDS,
    e2e_events_per_s: round(tp.e2e),
    pg_recvlogical_events_per_s: round(tp.recvlogical),
    mongo_ceiling_events_per_s: round(tp.mongo),
    pubsub_ceiling_events_per_s: round(tp.pubsub),
    ratio_to_recvlogical: round(tp.e2e / tp.recvlogical, 3),
    ratio_to_bottleneck: round(tp.e2e / bottleneck, 3),
    latency_ms: { p50: target.p50, p99: target.p99 },
    load_tx_per_s: loadTxPerS,
    peak_rss_mb: Math.max(tp.peakRssMb, lat.peakRssMb),
    transactions: tp.transactions,
    e2e_connector_cpu_ms: round(tp.cpuMs),
    e2e_connector_startup_ms: round(tp.startupMs),
    e2e_from_streaming_events_per_s: round(tp.fromStreaming),
    e2e_peak_rss_mb: tp.peakRssMb,
    latency_events: target.events,
    latency_p90_ms: target.p90,
    latency_max_ms: target.max,
    load_achieved_tx_per_s: round(target.achieved),
    load_synchronous_commit: values['load-synchronous-commit'],
    load_mix: LATENCY_MIX,
    low_load_tx_per_s: LOW_LOAD_TX_PER_S,
    low_load_latency_ms: { p50: low.p50, p90: low.p90, p99: low.p99, max: low.max },
    latency_peak_rss_mb: lat.peakRssMb,
  }
}

try {
  const report = await main()
  await stack?.stop()
  console.log(JSON.stringify(report))
  process.exit(0)
} catch (error) {
  log(`bench:pipeline failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  await stack?.stop().catch(() => {})
  process.exit(1)
}
