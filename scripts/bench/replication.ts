// bench:replication — our change source against pg_recvlogical and npm pg-logical-replication, on one workload.
// Every contender consumes a slot of its own, all created before the workload so they start at the same LSN,
// in its own process (spawn to exit is timed, peak RSS is the child's VmHWM); rounds alternate the contenders,
// each round starting with the next one, and the figures are medians. The workload ends with a marker message
// after which nothing of ours writes WAL, so that pg_recvlogical (stopping at --endpos) decodes no more than ours. A second phase streams one 1,000,000-row transaction through our source.
// Progress on stderr; the last line on stdout is the JSON report of /work/shared/benchmarks.md.
//   bun scripts/bench/replication.ts [--rounds 3] [--changes 300000] [--big-txn-rows 1000000]

import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type Lsn, formatLsn, parseLsn } from '../../src/replication/lsn.ts'
import { pluginOptions } from '../../src/replication/source.ts'
import { peakRssMb } from '../../test/support/memory.ts'
import { type PostgresServer, startPostgres } from '../../test/support/postgres.ts'
import { insertTasks } from '../../test/support/workspace.ts'
import { planWorkload, prepareWorkload, writeWorkload } from './workload.ts'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    changes: { type: 'string', default: '300000' },
    // Smaller only to try the script out; the report's big_txn_rows says what was measured.
    'big-txn-rows': { type: 'string', default: '1000000' },
  },
})
const ROUNDS = Number(values.rounds)
const MIN_CHANGES = Number(values.changes)
const BIG_TXN_ROWS = Number(values['big-txn-rows'])
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

type Report = { done?: boolean; changes?: number; commits?: number; peakRssMb?: number }
type Run = { ms: number; peakRssMb: number; cpuMs: number; walsenderCpuMs: number; report: Report | null }

const log = (line: string) => process.stderr.write(line + '\n')
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
 */
async function runProcess(what: string, command: string[], slot?: { sql: PostgresServer['sql']; name: string }): Promise<Run> {
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
  const [exitCode, stdout, stderr] = await Promise.all([child.exited, new Response(child.stdout).text(), new Response(child.stderr).text()])
  const ms = performance.now() - started
  clearInterval(sampling)
  children.delete(child)
  if (exitCode !== 0) throw new Error(`${what} exited with ${exitCode ?? child.signalCode}: ${stderr.trim().slice(-2000) || stdout.trim().slice(-2000)}`)
  const usage = child.resourceUsage()
  const last = stdout.trim().split('\n').at(-1)
  const report = last ? (JSON.parse(last) as Report) : null
  return {
    ms,
    peakRssMb: report?.peakRssMb ?? sampledPeakRssMb,
    cpuMs: usage ? Number(usage.cpuTime.total) / 1000 : NaN,
    walsenderCpuMs,
    report,
  }
}

/** User plus system CPU time of a live process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks). */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
}

function contenderCommand(contender: Contender, server: PostgresServer, slot: string, end: Lsn): string[] {
  const connection = ['--port', String(server.port), '--database', server.database, '--slot', slot, '--marker', MARKER]
  switch (contender) {
    case 'ours':
      return ['bun', OUR_CONSUMER, ...connection]
    case 'peer':
      return ['node', PEER_CONSUMER, ...connection]
    case 'pg_recvlogical':
      // The very options our source sends, to a file that costs nothing; it stops on its own at the end LSN.
      return [
        join(PG_BIN, 'pg_recvlogical'), '-h', server.host, '-p', String(server.port), '-U', server.user, '-d', server.database,
        '--slot', slot, '--start', '--endpos', formatLsn(end), '-f', '/dev/null', '--no-loop', '-F', '0', '-s', '10',
        ...pluginOptions({ schema: 'public', tables: TABLES, messagePrefix: MARKER }).flatMap(([name, value]) => ['-o', `${name}=${value}`]),
      ]
  }
}

async function main() {
  const benchStarted = performance.now()
  const plan = planWorkload(MIN_CHANGES)
  const events = plan.changes
  log(`workload: ${events} row changes in ${plan.transactions.length} transactions (largest ${plan.largest} rows)`)

  log('starting a throwaway PostgreSQL cluster')
  // A slot per contender and round, one for the warm-up and one for the big transaction.
  // No autovacuum: nothing may write WAL past the end marker while the contenders run (see below).
  pg = await startPostgres({ max_replication_slots: ROUNDS * CONTENDERS.length + 4, max_wal_senders: ROUNDS * CONTENDERS.length + 4, autovacuum: 'off' })
  const server = pg
  const sql = server.sql
  await prepareWorkload(sql)

  const slots = Array.from({ length: ROUNDS }, (_, r) => Object.fromEntries(CONTENDERS.map((c) => [c, `bench_r${r + 1}_${c}`])) as Record<Contender, string>)
  const warmUpSlot = 'bench_warm_up'
  for (const slot of [warmUpSlot, ...slots.flatMap((bySlot) => Object.values(bySlot))])
    await sql`select pg_create_logical_replication_slot(${slot}, 'wal2json')`
  log(`created ${ROUNDS * CONTENDERS.length + 1} slots before the workload`)

  let started = performance.now()
  await writeWorkload(sql, plan)
  const [counts] = await sql`select (select count(*) from tasks)::int as tasks, (select count(*) from workspaces)::int as workspaces`
  // Done now, so that no vacuum or checkpoint lands on one contender's run; and before the marker, since WAL past
  // it is decoded by pg_recvlogical (it stops only once the walsender has sent past --endpos) but not by a
  // consumer that stops at the marker itself.
  await sql`vacuum analyze`
  await sql`checkpoint`
  const [marker] = await sql`select pg_logical_emit_message(false, ${MARKER}, 'end')::text as lsn`
  const end = parseLsn(marker!.lsn)
  // Walsenders send only flushed WAL; with synchronous_commit off the WAL writer gets there within moments.
  for (;;) {
    const [row] = await sql`select pg_current_wal_flush_lsn()::text as flushed`
    if (parseLsn(row!.flushed) >= end) break
    await Bun.sleep(20)
  }
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
    // Each contender goes first in turn: the first of a round does not always meet the server as the last left it.
    const order = [...CONTENDERS.slice(r % CONTENDERS.length), ...CONTENDERS.slice(0, r % CONTENDERS.length)]
    for (const contender of order) {
      const run = await runProcess(`${contender} (round ${r + 1})`, contenderCommand(contender, server, slots[r]![contender], end), { sql, name: slots[r]![contender] })
      const what = `${contender} (round ${r + 1})`
      const [slot] = await sql`select (confirmed_flush_lsn >= ${formatLsn(end)}::pg_lsn) as reached, confirmed_flush_lsn::text as lsn
                               from pg_replication_slots where slot_name = ${slots[r]![contender]}`
      if (contender === 'pg_recvlogical') {
        // It writes to /dev/null: its final status update, at --endpos, is what shows it got through.
        if (!slot?.reached) throw new Error(`${what} exited with its slot confirmed at ${slot?.lsn}, short of ${formatLsn(end)}`)
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
        `cpu ${(run.cpuMs / 1000).toFixed(2)} s  walsender cpu ${(run.walsenderCpuMs / 1000).toFixed(2)} s  peak RSS ${run.peakRssMb} MB  slot confirmed ${slot?.lsn}`)
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
  await sql`select pg_create_logical_replication_slot(${bigSlot}, 'wal2json')`
  started = performance.now()
  await insertTasks(sql, (await sql`select md5('w0')::uuid as id`)[0]!.id, BIG_TXN_ROWS, 'big')
  log(`wrote it in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const big = await runProcess('big transaction consumer', [
    'bun', BIG_TXN_CONSUMER, '--port', String(server.port), '--database', server.database, '--slot', bigSlot, '--until-changes', String(BIG_TXN_ROWS),
  ])
  if (!big.report?.done || big.report.changes !== BIG_TXN_ROWS)
    throw new Error(`big transaction consumer saw ${big.report?.changes} changes, not ${BIG_TXN_ROWS}`)
  log(`big transaction consumed in ${(big.ms / 1000).toFixed(1)} s, peak RSS ${big.report.peakRssMb} MB`)
  log(`total ${((performance.now() - benchStarted) / 1000).toFixed(0)} s`)

  const medianOf = (contender: Contender, pick: (run: Run) => number) => round(median(runs[contender].map(pick)))
  return {
    bench: 'replication',
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
