// bench:replication — our change source against pg_recvlogical and npm pg-logical-replication, on one workload.
// Every contender consumes a slot of its own, all created before the workload so they start at the same LSN,
// in its own process (spawn to exit is timed, peak RSS is the child's VmHWM); rounds alternate the contenders,
// each round starting with the next one, and the figures are medians. The workload ends with a marker message
// after which nothing of ours writes WAL, so that pg_recvlogical (stopping at --endpos) decodes no more than ours. A second phase streams one 1,000,000-row transaction through our source.
// A third phase, the TOAST phase, runs our source alone on single-row UPDATEs that leave a large (TOASTed) value
// alone, which wal2json leaves out of the row, against the same UPDATEs on rows with nothing TOASTed: once
// catching up on them as a backlog, once streaming them live as they commit.
// Progress on stderr; the last line on stdout is the JSON report of /work/shared/benchmarks.md.
//   bun scripts/bench/replication.ts [--rounds 3] [--changes 300000] [--big-txn-rows 1000000]
//                                    [--toast-rows 2000] [--toast-updates 30000] [--only toast]
//                                    [--baseline CHECKOUT]
// `--baseline CHECKOUT` runs, instead of all this, our source against the same source of another checkout of this
// repository (its scripts/bench/our-consumer.ts, its node_modules installed) on the mixed workload, alternating, and
// reports the CPU time each spends per 1,000 events once streaming: what a change to the source costs.

import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { type Lsn, formatLsn, parseLsn } from '../../src/replication/lsn.ts'
import { pluginOptions } from '../../src/replication/source.ts'
import { peakRssMb } from '../../test/support/memory.ts'
import { type PostgresServer, startPostgres } from '../../test/support/postgres.ts'
import { insertTasks, largeText } from '../../test/support/workspace.ts'
import { planWorkload, prepareWorkload, seedTasks, writeSingleRowUpdates, writeWorkload } from './workload.ts'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    changes: { type: 'string', default: '300000' },
    // Smaller only to try the script out; the report's big_txn_rows says what was measured.
    'big-txn-rows': { type: 'string', default: '1000000' },
    'toast-rows': { type: 'string', default: '2000' },
    'toast-updates': { type: 'string', default: '30000' },
    // `--only toast` runs the TOAST phase alone, without the mixed workload's rounds and the big transaction.
    only: { type: 'string' },
    baseline: { type: 'string' },
  },
})
const ROUNDS = Number(values.rounds)
const MIN_CHANGES = Number(values.changes)
const BIG_TXN_ROWS = Number(values['big-txn-rows'])
const TOAST_ROWS = Number(values['toast-rows'])
const TOAST_UPDATES = Number(values['toast-updates'])
if (values.only !== undefined && values.only !== 'toast') throw new Error(`--only takes "toast", not ${JSON.stringify(values.only)}`)
const TOAST_ONLY = values.only === 'toast'
const BASELINE = values.baseline
const PG_BIN = process.env.TC_PG_BIN ?? '/usr/lib/postgresql/15/bin'
// The end marker: a non-transactional logical message written after the workload. Every contender asks wal2json
// for this prefix (as the daemon asks for its heartbeat's), so all decode the same stream.
const MARKER = 'tc-bench'
const TABLES = ['workspaces', 'tasks']
const HERE = import.meta.dir
const OUR_CONSUMER = join(HERE, 'our-consumer.ts')
const PEER_CONSUMER = join(HERE, 'peer-consumer.mjs')
const BIG_TXN_CONSUMER = join(HERE, '../../test/support/consume.ts')
// A contender that takes this long is stuck, not slow.
const RUN_TIMEOUT_MS = 180_000
const SAMPLE_MS = 20
const CLOCK_TICKS = Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100

type Contender = 'ours' | 'pg_recvlogical' | 'peer'
const CONTENDERS: Contender[] = ['ours', 'pg_recvlogical', 'peer']
// The TOAST phase's contenders, both our source: updates that leave a 20 kB description alone (stored out of line,
// so wal2json leaves it out of the row), and the same updates of rows whose short description is stored inline.
type ToastContender = 'toast' | 'plain'
const TOAST_CONTENDERS: ToastContender[] = ['toast', 'plain']
// The first updates of each TOAST-phase workload whose wal2json output is checked before the runs.
const CHECKED_UPDATES = 3

type Report = { done?: boolean; changes?: number; commits?: number; unchangedToastUpdates?: number; catalogReads?: number; peakRssMb?: number }
type Run = {
  ms: number
  peakRssMb: number
  cpuMs: number
  /** From the moment the process said its stream was up to its exit (NaN if it never said so). */
  streamingMs: number
  /** The process's CPU time when it said its stream was up: its start-up's. */
  streamingCpuMs: number
  walsenderCpuMs: number
  report: Report | null
}
// What our consumer prints once its stream is up.
const STREAMING_LINE = JSON.stringify({ streaming: true })

const log = (line: string) => process.stderr.write(line + '\n')
/** `contenders` starting with the round's own: each goes first in turn, since the first of a round does not always
 * meet the server as the last left it. */
const inTurn = <T>(contenders: T[], round: number) => {
  const first = round % contenders.length
  return [...contenders.slice(first), ...contenders.slice(0, first)]
}
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
const round = (x: number, digits = 0) => Number(x.toFixed(digits))

let pg: PostgresServer | null = null
const children = new Set<Bun.Subprocess>()
let interrupted = false

async function cleanup() {
  for (const child of children) child.kill('SIGKILL')
  await pg?.stop()
  pg = null
}
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    interrupted = true
    log(`${signal}: stopping the cluster`)
    cleanup().finally(() => process.exit(130))
  })

/**
 * Runs one contender's process to its exit: wall time from spawn, CPU time, peak RSS, its last stdout line as JSON,
 * and the CPU time of the walsender that served `slot`. Peak RSS is the child's own VmHWM: the one it reports, else
 * the last sample from /proc (rusage's maxrss is no good here: Linux carries it over from the forked parent).
 * `whenStreaming` runs once the child says its stream is up (a live workload); should it fail, the child, which
 * would wait for a marker that never comes, is killed.
 */
async function runProcess(
  what: string,
  command: string[],
  slot?: { sql: postgres.Sql; name: string },
  whenStreaming?: () => Promise<void>,
): Promise<Run> {
  const started = performance.now()
  const child = Bun.spawn(command, { stdout: 'pipe', stderr: 'pipe', timeout: RUN_TIMEOUT_MS, killSignal: 'SIGKILL' })
  children.add(child)
  let walsenderPid = 0
  let walsenderCpuMs = NaN
  let sampledPeakRssMb = NaN
  const sampling = setInterval(async () => {
    try {
      sampledPeakRssMb = peakRssMb(child.pid)
      if (!slot) return
      if (!walsenderPid) {
        const [row] = await slot.sql`select active_pid from pg_replication_slots where slot_name = ${slot.name}`
        walsenderPid = row?.active_pid ?? 0
      }
      if (walsenderPid) walsenderCpuMs = processCpuMs(walsenderPid)
    } catch {} // the process is gone: the last sample stands
  }, SAMPLE_MS)
  let streamingAt = NaN
  let streamingCpuMs = NaN
  let streamingWork: Promise<void> = Promise.resolve()
  const onLine = (line: string) => {
    if (line !== STREAMING_LINE) return
    streamingAt = performance.now()
    streamingCpuMs = processCpuMs(child.pid)
    if (!whenStreaming) return
    streamingWork = whenStreaming()
    streamingWork.catch(() => child.kill('SIGKILL'))
  }
  const [exitCode, stdout, stderr] = await Promise.all([child.exited, readLines(child.stdout, onLine), new Response(child.stderr).text()])
  const exitedAt = performance.now()
  clearInterval(sampling)
  children.delete(child)
  await streamingWork
  if (exitCode !== 0) throw new Error(`${what} exited with ${exitCode ?? child.signalCode}: ${stderr.trim().slice(-2000) || stdout.trim().slice(-2000)}`)
  const usage = child.resourceUsage()
  const last = stdout.trim().split('\n').at(-1)
  const report = last ? (JSON.parse(last) as Report) : null
  return {
    ms: exitedAt - started,
    peakRssMb: report?.peakRssMb ?? sampledPeakRssMb,
    cpuMs: usage ? Number(usage.cpuTime.total) / 1000 : NaN,
    streamingMs: exitedAt - streamingAt,
    streamingCpuMs,
    walsenderCpuMs,
    report,
  }
}

/** All of a stream's text, handing each line to `onLine` as it arrives. */
async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<string> {
  const decoder = new TextDecoder()
  let text = ''
  let lineStart = 0
  for await (const chunk of stream) {
    text += decoder.decode(chunk, { stream: true })
    for (let end = text.indexOf('\n', lineStart); end >= 0; end = text.indexOf('\n', lineStart)) {
      onLine(text.slice(lineStart, end))
      lineStart = end + 1
    }
  }
  return text
}

/** User plus system CPU time of a live process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks). */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
}

function contenderCommand(contender: Contender, server: PostgresServer, slot: string, end: Lsn): string[] {
  switch (contender) {
    case 'ours':
      return ourCommand(server, server.database, slot)
    case 'peer':
      return ['node', PEER_CONSUMER, ...consumerArguments(server, server.database, slot)]
    case 'pg_recvlogical':
      // The very options our source sends, to a file that costs nothing; it stops on its own at the end LSN.
      return [
        join(PG_BIN, 'pg_recvlogical'), '-h', server.host, '-p', String(server.port), '-U', server.user, '-d', server.database,
        '--slot', slot, '--start', '--endpos', formatLsn(end), '-f', '/dev/null', '--no-loop', '-F', '0', '-s', '10',
        ...pluginOptions({ schema: 'public', tables: TABLES, messagePrefix: MARKER }).flatMap(([name, value]) => ['-o', `${name}=${value}`]),
      ]
  }
}

function ourCommand(server: PostgresServer, database: string, slot: string): string[] {
  return ['bun', OUR_CONSUMER, ...consumerArguments(server, database, slot)]
}

function consumerArguments(server: PostgresServer, database: string, slot: string): string[] {
  return ['--port', String(server.port), '--database', database, '--slot', slot, '--marker', MARKER]
}

async function createSlots(sql: postgres.Sql, names: string[]) {
  for (const slot of names) await sql`select pg_create_logical_replication_slot(${slot}, 'wal2json')`
}

/** Drops the slots once no walsender holds them: that of a consumer that has just exited may still be ending. */
async function dropSlots(sql: postgres.Sql, names: string[]) {
  for (const slot of names) {
    while ((await sql`select 1 from pg_replication_slots where slot_name = ${slot} and active`).length) await Bun.sleep(20)
    await sql`select pg_drop_replication_slot(${slot})`
  }
}

/** Whether the slot is confirmed at `end` or past it, and where it is. */
async function slotConfirmed(sql: postgres.Sql, slot: string, end: Lsn): Promise<{ reached: boolean; lsn: string }> {
  const [row] = await sql`select (confirmed_flush_lsn >= ${formatLsn(end)}::pg_lsn) as reached, confirmed_flush_lsn::text as lsn
                          from pg_replication_slots where slot_name = ${slot}`
  return { reached: row?.reached === true, lsn: row?.lsn }
}

/** Writes the end marker in `sql`'s database; returns its LSN once it is flushed. */
async function writeEndMarker(sql: postgres.Sql): Promise<Lsn> {
  const [marker] = await sql`select pg_logical_emit_message(false, ${MARKER}, 'end')::text as lsn`
  const end = parseLsn(marker!.lsn)
  // Walsenders send only flushed WAL; with synchronous_commit off the WAL writer gets there within moments.
  for (;;) {
    const [row] = await sql`select pg_current_wal_flush_lsn()::text as flushed`
    if (parseLsn(row!.flushed) >= end) return end
    await Bun.sleep(20)
  }
}

async function main() {
  const benchStarted = performance.now()
  log('starting a throwaway PostgreSQL cluster')
  // The mixed workload's rounds take a slot per contender and round, one for the warm-up and one for the big
  // transaction; the TOAST phase one per data set and round for catching up, one per data set for its check and for
  // the live run at hand.
  // No autovacuum: nothing may write WAL past the end marker while the contenders run (see below).
  const slotCount = ROUNDS * CONTENDERS.length + 2 + (ROUNDS + 2) * TOAST_CONTENDERS.length
  pg = await startPostgres({ max_replication_slots: slotCount, max_wal_senders: slotCount, autovacuum: 'off' })
  if (BASELINE !== undefined) return { bench: 'replication', ...(await measureAgainstBaseline(pg, BASELINE)) }
  const report = {
    bench: 'replication',
    ...(TOAST_ONLY ? { only: 'toast' } : await measureMixedWorkload(pg)),
    ...(await measureToastUpdates(pg)),
  }
  log(`total ${((performance.now() - benchStarted) / 1000).toFixed(0)} s`)
  return report
}

/** The mixed workload's rounds, then the big transaction. */
async function measureMixedWorkload(server: PostgresServer) {
  const plan = planWorkload(MIN_CHANGES)
  const events = plan.changes
  log(`workload: ${events} row changes in ${plan.transactions.length} transactions (largest ${plan.largest} rows)`)
  const sql = server.sql
  await prepareWorkload(sql)

  const slots = Array.from({ length: ROUNDS }, (_, r) => Object.fromEntries(CONTENDERS.map((c) => [c, `bench_r${r + 1}_${c}`])) as Record<Contender, string>)
  const warmUpSlot = 'bench_warm_up'
  await createSlots(sql, [warmUpSlot, ...slots.flatMap((bySlot) => Object.values(bySlot))])
  log(`created ${ROUNDS * CONTENDERS.length + 1} slots before the workload`)

  let started = performance.now()
  await writeWorkload(sql, plan)
  const [counts] = await sql`select (select count(*) from tasks)::int as tasks, (select count(*) from workspaces)::int as workspaces`
  // Done now, so that no vacuum or checkpoint lands on one contender's run; and before the marker, since WAL past
  // it is decoded by pg_recvlogical (it stops only once the walsender has sent past --endpos) but not by a
  // consumer that stops at the marker itself.
  await sql`vacuum analyze`
  await sql`checkpoint`
  const end = await writeEndMarker(sql)
  log(`wrote the workload in ${((performance.now() - started) / 1000).toFixed(1)} s; end LSN ${formatLsn(end)} (end of the marker); ` +
    `${counts!.tasks} tasks and ${counts!.workspaces} workspaces remain`)
  /** WAL written past the end marker so far (the server's own records: running-transaction snapshots). */
  const walAfterEnd = async () => {
    const [row] = await sql`select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), ${formatLsn(end)}::pg_lsn)::float8 as bytes`
    return Math.max(0, row!.bytes as number)
  }
  const loadBefore = loadavg()[0]!

  // One untimed pass first: whoever came first would otherwise pay for the server's cold caches.
  const warmUp = await runProcess('warm-up', contenderCommand('pg_recvlogical', server, warmUpSlot, end))
  log(`warm-up pass (pg_recvlogical, untimed) ${(warmUp.ms / 1000).toFixed(2)} s`)

  const runs: Record<Contender, Run[]> = { ours: [], pg_recvlogical: [], peer: [] }
  for (let r = 0; r < ROUNDS; r++) {
    for (const contender of inTurn(CONTENDERS, r)) {
      const run = await runProcess(`${contender} (round ${r + 1})`, contenderCommand(contender, server, slots[r]![contender], end), { sql, name: slots[r]![contender] })
      const what = `${contender} (round ${r + 1})`
      const slot = await slotConfirmed(sql, slots[r]![contender], end)
      if (contender === 'pg_recvlogical') {
        // It writes to /dev/null: its final status update, at --endpos, is what shows it got through.
        if (!slot.reached) throw new Error(`${what} exited with its slot confirmed at ${slot.lsn}, short of ${formatLsn(end)}`)
      } else {
        if (!run.report?.done || run.report.changes !== events)
          throw new Error(`${what} saw ${run.report?.changes} row changes, not the workload's ${events}`)
        // Our source hands out no transaction without a tracked change; wal2json sends even empty ones (autovacuum's).
        const commits = run.report.commits ?? NaN
        if (contender === 'ours' ? commits !== plan.transactions.length : !(commits >= plan.transactions.length))
          throw new Error(`${what} saw ${commits} commits; the workload has ${plan.transactions.length} transactions`)
      }
      runs[contender].push(run)
      log(`round ${r + 1} ${contender.padEnd(14)} ${(run.ms / 1000).toFixed(2)} s  ${Math.round(events / (run.ms / 1000))} events/s  ` +
        `cpu ${(run.cpuMs / 1000).toFixed(2)} s  walsender cpu ${(run.walsenderCpuMs / 1000).toFixed(2)} s  peak RSS ${run.peakRssMb} MB  slot confirmed ${slot.lsn}`)
    }
  }

  const loadAfter = loadavg()[0]!
  const walAfterEndBytes = await walAfterEnd()
  log(`WAL written past the end marker during the rounds: ${walAfterEndBytes} bytes`)
  const rate = (contender: Contender) => events / (median(runs[contender].map((run) => run.ms)) / 1000)
  const ours = rate('ours')
  const recvlogical = rate('pg_recvlogical')
  const peer = rate('peer')

  log(`big transaction: ${BIG_TXN_ROWS} rows in one INSERT`)
  const bigSlot = 'bench_big_txn'
  await createSlots(sql, [bigSlot])
  started = performance.now()
  await insertTasks(sql, (await sql`select md5('w0')::uuid as id`)[0]!.id, BIG_TXN_ROWS, 'big')
  log(`wrote it in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const big = await runProcess('big transaction consumer', [
    'bun', BIG_TXN_CONSUMER, '--port', String(server.port), '--database', server.database, '--slot', bigSlot, '--until-changes', String(BIG_TXN_ROWS),
  ])
  if (!big.report?.done || big.report.changes !== BIG_TXN_ROWS)
    throw new Error(`big transaction consumer saw ${big.report?.changes} changes, not ${BIG_TXN_ROWS}`)
  log(`big transaction consumed in ${(big.ms / 1000).toFixed(1)} s, peak RSS ${big.report.peakRssMb} MB`)

  const medianOf = (contender: Contender, pick: (run: Run) => number) => round(median(runs[contender].map(pick)))
  return {
    events,
    rounds: ROUNDS,
    ours_events_per_s: round(ours),
    pg_recvlogical_events_per_s: round(recvlogical),
    ratio: round(ours / recvlogical, 3),
    peer: 'pg-logical-replication',
    peer_events_per_s: round(peer),
    peer_ratio: round(ours / peer, 3),
    ours_peak_rss_mb: Math.max(...runs.ours.map((run) => run.peakRssMb)),
    big_txn_rows: BIG_TXN_ROWS,
    big_txn_peak_rss_mb: big.report.peakRssMb,
    transactions: plan.transactions.length,
    ours_cpu_ms: medianOf('ours', (run) => run.cpuMs),
    pg_recvlogical_cpu_ms: medianOf('pg_recvlogical', (run) => run.cpuMs),
    peer_cpu_ms: medianOf('peer', (run) => run.cpuMs),
    // The server's side of each run. Decoding and wal2json's JSON are the same work whoever reads; the socket writes
    // are not: a reader that drains every message at once costs the walsender a send() each.
    walsender_cpu_ms: Object.fromEntries(CONTENDERS.map((c) => [c, medianOf(c, (run) => run.walsenderCpuMs)])),
    pg_recvlogical_peak_rss_mb: Math.max(...runs.pg_recvlogical.map((run) => run.peakRssMb)),
    peer_peak_rss_mb: Math.max(...runs.peer.map((run) => run.peakRssMb)),
    big_txn_seconds: round(big.ms / 1000, 1),
    // The machine's 1-minute load average before and after the rounds: above the core count, neighbours were busy.
    loadavg_1m: [round(loadBefore, 1), round(loadAfter, 1)],
    // The server's own records past the end marker by the end of the rounds, which pg_recvlogical may decode and ours not.
    wal_after_end_bytes: walAfterEndBytes,
  }
}

/** Our source against another checkout's, on the mixed workload: CPU time per 1,000 events once streaming. */
async function measureAgainstBaseline(server: PostgresServer, checkout: string) {
  const plan = planWorkload(MIN_CHANGES)
  const events = plan.changes
  log(`workload: ${events} row changes in ${plan.transactions.length} transactions; baseline ${checkout}`)
  const sql = server.sql
  await prepareWorkload(sql)
  const contenders = ['ours', 'baseline'] as const
  const slots = Array.from({ length: ROUNDS }, (_, r) => Object.fromEntries(contenders.map((c) => [c, `bench_r${r + 1}_${c}`])))
  await createSlots(sql, slots.flatMap((bySlot) => Object.values(bySlot)))
  await writeWorkload(sql, plan)
  await sql`vacuum analyze`
  await sql`checkpoint`
  const end = await writeEndMarker(sql)
  const consumers = { ours: OUR_CONSUMER, baseline: join(checkout, 'scripts/bench/our-consumer.ts') }
  const cpuPerThousand = { ours: [] as number[], baseline: [] as number[] }
  for (let r = 0; r < ROUNDS; r++) {
    for (const contender of inTurn([...contenders], r)) {
      const slot = slots[r]![contender]!
      const run = await runProcess(`${contender} (round ${r + 1})`, ['bun', consumers[contender], ...consumerArguments(server, server.database, slot)], { sql, name: slot })
      if (!run.report?.done || run.report.changes !== events) throw new Error(`${contender} (round ${r + 1}) saw ${run.report?.changes} row changes, not ${events}`)
      const perThousand = ((run.cpuMs - run.streamingCpuMs) * 1000) / events
      cpuPerThousand[contender].push(round(perThousand, 2))
      log(`round ${r + 1} ${contender.padEnd(8)} ${(run.ms / 1000).toFixed(2)} s  cpu ${(run.cpuMs / 1000).toFixed(2)} s ` +
        `(start-up ${(run.streamingCpuMs / 1000).toFixed(2)} s)  ${perThousand.toFixed(2)} ms cpu per 1,000 events streaming`)
    }
  }
  const ours = median(cpuPerThousand.ours)
  const baseline = median(cpuPerThousand.baseline)
  return { events, rounds: ROUNDS, baseline: checkout, ours_cpu_ms_per_1000: cpuPerThousand.ours, baseline_cpu_ms_per_1000: cpuPerThousand.baseline,
    ours_median: round(ours, 2), baseline_median: round(baseline, 2), cpu_ratio: round(ours / baseline, 3) }
}

// Each data set has a database of its own: every catch-up slot can then start at one LSN before both workloads, and a
// stream carries its own workload alone (wal2json sends another table's transactions as empty begin/commit pairs,
// another database's not at all).
type DataSet = { database: string; sql: postgres.Sql; ids: string[] }
type LiveRun = Run & { updatesPerS: number }

async function measureToastUpdates(server: PostgresServer) {
  log(`TOAST phase: ${TOAST_UPDATES} single-row updates of priority over ${TOAST_ROWS} tasks with a 20 kB description, ` +
    `against as many over tasks with a short one`)
  const dataSets = {} as Record<ToastContender, DataSet>
  try {
    for (const contender of TOAST_CONTENDERS) dataSets[contender] = await seedDataSet(server, contender)
    const loadBefore = loadavg()[0]!
    const catchUp = await measureToastCatchUp(server, dataSets)
    const live = await measureToastLive(server, dataSets)
    return { ...toastReport(catchUp, live), toast_loadavg_1m: [round(loadBefore, 1), round(loadavg()[0]!, 1)] }
  } finally {
    for (const dataSet of Object.values(dataSets)) await dataSet.sql.end()
  }
}

async function seedDataSet(server: PostgresServer, contender: ToastContender): Promise<DataSet> {
  const database = await server.createDatabase(`${contender}_updates`)
  const sql = postgres({ ...server.options, database, max: 2 })
  const ids = await seedTasks(sql, TOAST_ROWS, contender === 'toast' ? largeText : (n) => `Describe the work for task ${n}.`)
  return { database, sql, ids }
}

/**
 * Catching up: every round's slots are created before the workloads, which are written at once (interleaved in the
 * WAL, so that each walsender passes over the other's as much), and each consumer starts after its marker.
 */
async function measureToastCatchUp(server: PostgresServer, dataSets: Record<ToastContender, DataSet>): Promise<Record<ToastContender, Run[]>> {
  const slotName = (contender: ToastContender, r: number) => `${contender}_catchup_r${r + 1}`
  const checkSlot = (contender: ToastContender) => `${contender}_check`
  const roundNumbers = Array.from({ length: ROUNDS }, (_, r) => r)
  for (const contender of TOAST_CONTENDERS)
    await createSlots(dataSets[contender].sql, [checkSlot(contender), ...roundNumbers.map((r) => slotName(contender, r))])

  const started = performance.now()
  await Promise.all(TOAST_CONTENDERS.map((contender) => writeSingleRowUpdates(dataSets[contender].sql, dataSets[contender].ids, TOAST_UPDATES)))
  log(`wrote both workloads in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  for (const contender of TOAST_CONTENDERS) {
    const { sql } = dataSets[contender]
    await checkDescriptionLeftOut(contender, sql, checkSlot(contender))
    await dropSlots(sql, [checkSlot(contender)])
    // As in the mixed workload's rounds: no vacuum or checkpoint may land on one contender's run.
    await sql`vacuum analyze`
  }
  await server.sql`checkpoint`
  const ends = {} as Record<ToastContender, Lsn>
  for (const contender of TOAST_CONTENDERS) ends[contender] = await writeEndMarker(dataSets[contender].sql)

  const runs: Record<ToastContender, Run[]> = { toast: [], plain: [] }
  for (const r of roundNumbers)
    for (const contender of inTurn(TOAST_CONTENDERS, r)) {
      const { database, sql } = dataSets[contender]
      const slot = slotName(contender, r)
      const what = `catch-up ${contender} (round ${r + 1})`
      const run = await runProcess(what, ourCommand(server, database, slot), { sql, name: slot })
      await checkToastRun(what, run, contender, { sql, name: slot }, ends[contender])
      runs[contender].push(run)
      log(`${what.padEnd(28)} ${describeToastRun(run)}  ${Math.round(TOAST_UPDATES / (run.streamingMs / 1000))} changes/s streaming`)
    }
  for (const contender of TOAST_CONTENDERS) await dropSlots(dataSets[contender].sql, roundNumbers.map((r) => slotName(contender, r)))
  return runs
}

/**
 * Streaming live: per round and contender, a fresh slot, our consumer started on it, and once it streams the
 * workload written, each update committed and flushed on its own, so that the stream brings it as it commits.
 */
async function measureToastLive(server: PostgresServer, dataSets: Record<ToastContender, DataSet>): Promise<Record<ToastContender, LiveRun[]>> {
  const runs: Record<ToastContender, LiveRun[]> = { toast: [], plain: [] }
  for (let r = 0; r < ROUNDS; r++)
    for (const contender of inTurn(TOAST_CONTENDERS, r)) {
      const { database, sql, ids } = dataSets[contender]
      const slot = `${contender}_live_r${r + 1}`
      const what = `live ${contender} (round ${r + 1})`
      // Each run meets its table as vacuumed as the others did; before the slot, so that the stream holds none of it.
      await sql`vacuum`
      await createSlots(sql, [slot])
      let end: Lsn = 0n
      let writeMs = NaN
      const run = await runProcess(what, ourCommand(server, database, slot), { sql, name: slot }, async () => {
        const started = performance.now()
        await writeSingleRowUpdates(sql, ids, TOAST_UPDATES)
        writeMs = performance.now() - started
        end = await writeEndMarker(sql)
      })
      await checkToastRun(what, run, contender, { sql, name: slot }, end)
      await dropSlots(sql, [slot])
      const updatesPerS = TOAST_UPDATES / (writeMs / 1000)
      runs[contender].push({ ...run, updatesPerS })
      log(`${what.padEnd(28)} ${describeToastRun(run)}  written at ${Math.round(updatesPerS)} updates/s`)
    }
  return runs
}

/**
 * wal2json's own output for the first updates of a workload, peeked at on a slot of their own: every update of the
 * TOAST data set must leave `description` out (the case under measure), none of the plain one's may.
 */
async function checkDescriptionLeftOut(contender: ToastContender, sql: postgres.Sql, slot: string) {
  const options = pluginOptions({ schema: 'public', tables: TABLES }).flat()
  // A transaction of one update is three rows: begin, update, commit.
  const rows = await sql`select data from pg_logical_slot_peek_changes(${slot}, null, ${CHECKED_UPDATES * 3}, variadic ${options}::text[])`
  const updates = rows.map((row) => JSON.parse(row.data)).filter((message) => message.action === 'U')
  const leftOut = updates.filter((update) => !update.columns.some((column: { name: string }) => column.name === 'description')).length
  const expected = contender === 'toast' ? updates.length : 0
  if (updates.length < CHECKED_UPDATES || leftOut !== expected)
    throw new Error(`wal2json left description out of ${leftOut} of the ${contender} workload's first ${updates.length} updates; expected ${expected} of ${CHECKED_UPDATES}`)
  log(`wal2json leaves description out of ${leftOut} of the ${contender} workload's first ${updates.length} updates`)
}

/**
 * A run counts only if the consumer received the workload whole, each update its own transaction and with a
 * TOASTed value left out exactly where one was expected, and the slot is confirmed at the marker it stopped at.
 */
async function checkToastRun(what: string, run: Run, contender: ToastContender, slot: { sql: postgres.Sql; name: string }, end: Lsn) {
  const report = run.report
  if (!report?.done || report.changes !== TOAST_UPDATES || report.commits !== TOAST_UPDATES)
    throw new Error(`${what} saw ${report?.changes} row changes in ${report?.commits} commits, not the workload's ${TOAST_UPDATES} in as many`)
  const leftOut = contender === 'toast' ? TOAST_UPDATES : 0
  if (report.unchangedToastUpdates !== leftOut)
    throw new Error(`${what} saw ${report.unchangedToastUpdates} updates leave a TOASTed value out, not ${leftOut}`)
  const confirmed = await slotConfirmed(slot.sql, slot.name, end)
  if (!confirmed.reached) throw new Error(`${what} exited with its slot confirmed at ${confirmed.lsn}, short of its marker at ${formatLsn(end)}`)
}

/** CPU time per change once the stream was up: the start-up, the same for every run, is no change's. */
const cpuUsPerChange = (run: Run) => ((run.cpuMs - run.streamingCpuMs) * 1000) / TOAST_UPDATES

function describeToastRun(run: Run): string {
  return `${(run.streamingMs / 1000).toFixed(2)} s streaming  cpu ${cpuUsPerChange(run).toFixed(1)} µs/change ` +
    `(start-up ${Math.round(run.streamingCpuMs)} ms)  walsender cpu ${(run.walsenderCpuMs / 1000).toFixed(2)} s  ` +
    `catalog readings ${run.report!.catalogReads}  peak RSS ${run.peakRssMb} MB`
}

function toastReport(catchUp: Record<ToastContender, Run[]>, live: Record<ToastContender, LiveRun[]>) {
  // Ratios per round first: a round's two runs ran back to back, so the machine's load moved least between them.
  const ratio = <R extends Run>(runs: Record<ToastContender, R[]>, pick: (run: R) => number) =>
    round(median(runs.toast.map((run, r) => pick(run) / pick(runs.plain[r]!))), 3)
  const medians = <R extends Run>(runs: Record<ToastContender, R[]>, pick: (run: R) => number, digits = 0) =>
    ({ toast: round(median(runs.toast.map(pick)), digits), plain: round(median(runs.plain.map(pick)), digits) })
  const catalogReads = (run: Run) => run.report!.catalogReads!
  const allRuns = [...TOAST_CONTENDERS.flatMap((contender) => [...catchUp[contender], ...live[contender]])]
  const liveCpu = medians(live, cpuUsPerChange, 1)
  const liveReads = medians(live, catalogReads)
  return {
    toast_rows: TOAST_ROWS,
    toast_updates: TOAST_UPDATES,
    toast_catchup_cpu_ratio: ratio(catchUp, cpuUsPerChange),
    toast_catchup_cpu_us_per_change: medians(catchUp, cpuUsPerChange, 1),
    toast_catchup_wall_ratio: ratio(catchUp, (run) => run.streamingMs),
    toast_catchup_changes_per_s: medians(catchUp, (run) => TOAST_UPDATES / (run.streamingMs / 1000)),
    toast_catchup_catalog_reads: medians(catchUp, catalogReads),
    toast_live_cpu_ratio: ratio(live, cpuUsPerChange),
    toast_live_cpu_us_per_change: liveCpu,
    toast_live_catalog_reads: liveReads,
    // What the TOAST workload's consumer spent beyond the plain one's, per reading it made beyond the plain one's.
    toast_live_extra_cpu_us_per_reading: round(((liveCpu.toast - liveCpu.plain) * TOAST_UPDATES) / (liveReads.toast - liveReads.plain)),
    toast_live_updates_per_s: medians(live, (run) => run.updatesPerS),
    toast_startup_cpu_ms: round(median(allRuns.map((run) => run.streamingCpuMs))),
    toast_peak_rss_mb: Math.max(...allRuns.map((run) => run.peakRssMb)),
  }
}

try {
  const report = await main()
  await cleanup()
  console.log(JSON.stringify(report))
  process.exit(0)
} catch (error) {
  if (interrupted) await new Promise(() => {}) // the signal handler is cleaning up and exits
  log(`bench:replication failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  await cleanup()
  process.exit(1)
}
