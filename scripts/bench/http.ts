// bench:http — the HTTP API under load, as /work/shared/benchmarks.md asks: SSE clients of
// /v1/api/ws/Stream while a steady 1,000 single-row transactions a second are written, then a 100,000-task
// NDJSON Snapshot.
//
// Delay, `sse_delay_ms`: from the moment a batch is durable in MongoDB and acknowledged by Pub/Sub (stamped by
// the connector: its debug line "batch durable", on this host's clock) to the moment each client has parsed
// each event (stamped by the client, same clock): one sample per event and client, no cap on the quantile.
// The comparison is one client alone (`one_client_sse_delay_ms`), in the same run, rounds alternating
// (one client, then 100 clients), medians over the rounds. Catch-up, after the rounds, while the load runs:
// 100 further clients resume some 10,000 events back (whole batches) at once; their deliveries are reported apart. Misses and
// duplicates are counted per client: a live client must get every event made durable while it was connected.
// The load is reported as achieved (events made durable a second), not as asked for. The clients run in
// this process, which shares the two cores with the connector and the servers.
// Snapshot: 100,000 tasks inserted and streamed through the connector first; then the NDJSON Snapshot is
// read to the end while the connector's RSS is sampled; growth = highest sample − RSS before the request.
// Progress on stderr; the last line on stdout is the JSON report.
//   bun scripts/bench/http.ts [--clients 100] [--load-tx-per-s 1000] [--seconds 12] [--rounds 3] [--snapshot-tasks 100000] [--heap-mb 128]

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { peakRssMb, rssMb } from '../../test/support/memory.ts'
import { type Connector, CONNECTOR_MEMORY_ENV, startConnector, startStack, waitCaughtUp } from '../../test/support/stack.ts'
import { createWorkspace, insertTasks } from '../../test/support/workspace.ts'
import { runPacedLoad } from './pipeline-load.ts'

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '100' },
    'load-tx-per-s': { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '12' },
    rounds: { type: 'string', default: '3' },
    'catch-up-events': { type: 'string', default: '10000' },
    'snapshot-tasks': { type: 'string', default: '100000' },
    'heap-mb': { type: 'string' },
  },
})
const CLIENTS = Number(values.clients)
const LOAD_TX_PER_S = Number(values['load-tx-per-s'])
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const CATCH_UP_EVENTS = Number(values['catch-up-events'])
const SNAPSHOT_TASKS = Number(values['snapshot-tasks'])
const HEAP_ENV = values['heap-mb'] ? { BUN_JSC_forceRAMSize: String(Number(values['heap-mb']) * 1024 * 1024) } : CONNECTOR_MEMORY_ENV
// The load runs this long before the first round: the connector's first batches are not a steady state.
const WARMUP_SECONDS = 3
// Events made durable this close to a window's edges are not expected of its clients (connecting and closing take time).
const EDGE_MS = 500
const RSS_SAMPLE_MS = 20
const CONNECT_ATTEMPTS = 30
const CATCH_UP_MS = 900_000
// FerretDB sorts the whole history for each resuming client: 100 at once take it minutes on a busy host.
const CATCH_UP_DEADLINE_MS = 300_000
// Tasks inserted per statement when filling the table: transactions the connector takes in a few batches.
const FILL_STATEMENT_TASKS = 5_000

const progress = (message: string) => process.stderr.write(`[bench:http] ${message}\n`)
const now = () => performance.timeOrigin + performance.now()

/** The connector's "batch durable" stamps, read from its log as it grows; ids and times in durable order. */
function durableStamps(connector: Connector) {
  const firsts: string[] = []
  const lasts: string[] = []
  const sizes: number[] = []
  const times: number[] = []
  let offset = 0
  return {
    /** Takes in the lines logged since the last call. */
    absorb() {
      const text = connector.log()
      const end = text.lastIndexOf('\n') + 1
      for (const line of text.slice(offset, end).split('\n')) {
        if (!line.includes('"batch durable"')) continue
        const { firstEventId, lastEventId, durableAt, events } = JSON.parse(line)
        firsts.push(firstEventId)
        lasts.push(lastEventId)
        sizes.push(events)
        times.push(durableAt)
      }
      offset = end
    },
    /** When the batch holding `id` was durable; undefined when not (yet) stamped. */
    durableAt(id: string): number | undefined {
      let low = 0
      let high = firsts.length - 1
      while (low <= high) {
        const middle = (low + high) >> 1
        if (firsts[middle]! <= id) low = middle + 1
        else high = middle - 1
      }
      return high >= 0 && id <= lasts[high]! ? times[high] : undefined
    },
    /**
     * A resume point about `count` events back from the last stamped: the last id of a batch, the head, and
     * the exact number of events after the one up to the other; null while fewer are stamped.
     */
    back(count: number): { since: string; head: string; events: number } | null {
      let events = 0
      for (let i = lasts.length - 1; i > 0; i--) {
        events += sizes[i]!
        if (events >= count) return { since: lasts[i - 1]!, head: lasts.at(-1)!, events }
      }
      return null
    },
    /** Events made durable between two moments. */
    eventsBetween(from: number, to: number): number {
      let count = 0
      for (let i = 0; i < times.length; i++) if (times[i]! >= from && times[i]! <= to) count += sizes[i]!
      return count
    },
  }
}
type Stamps = ReturnType<typeof durableStamps>

/** One SSE client: parses every event, and keeps per-client counts and delay samples. */
async function streamClient(url: string, stamps: Stamps, options: { lastEventId?: string; until?: string } = {}) {
  const abort = new AbortController()
  const connect = () => fetch(url, { signal: abort.signal, headers: options.lastEventId ? { 'last-event-id': options.lastEventId } : {} })
  // A 503 (MongoDB slow to answer the first read) is tried again, as a client would.
  let response = await connect()
  for (let attempt = 1; response.status === 503 && attempt < CONNECT_ATTEMPTS; attempt++) {
    await Bun.sleep(1_000)
    response = await connect()
  }
  if (response.status !== 200) throw new Error(`stream answered ${response.status}`)
  const state = {
    connectedAt: now(),
    lastId: options.lastEventId ?? '',
    unique: 0,
    duplicates: 0,
    delays: [] as number[],
    /** When the batch of each event received was durable (receipts once stamped). */
    durableTimes: [] as number[],
    unstamped: [] as [string, number][],
    receipts: [] as [string, number][],
    /** When the event `until` arrived, and how many events had arrived by then. */
    reachedAt: null as number | null,
    reachedCount: 0,
  }
  const reading = (async () => {
    const decoder = new TextDecoder()
    let rest = ''
    try {
      for await (const chunk of response.body as ReadableStream<Uint8Array>) {
        const frames = (rest + decoder.decode(chunk, { stream: true })).split('\n\n')
        rest = frames.pop()!
        for (const frame of frames) {
          if (!frame.startsWith('id: ')) continue
          const event = JSON.parse(frame.slice(frame.indexOf('\ndata: ') + 7)) as { id: string }
          const at = now()
          if (event.id <= state.lastId) {
            state.duplicates++
            continue
          }
          state.lastId = event.id
          state.unique++
          state.receipts.push([event.id, at])
          if (event.id === options.until) {
            state.reachedAt = at
            state.reachedCount = state.unique
          }
        }
      }
    } catch {}
  })()
  return {
    state,
    /** Turns receipts into delay samples where their batch is stamped. */
    settle() {
      const pending = [...state.unstamped, ...state.receipts]
      state.unstamped = []
      state.receipts = []
      for (const [id, at] of pending) {
        const durableAt = stamps.durableAt(id)
        if (durableAt === undefined) state.unstamped.push([id, at])
        else {
          state.delays.push(at - durableAt)
          state.durableTimes.push(durableAt)
        }
      }
    },
    /** Events received (once each) that were made durable between two moments. */
    receivedBetween: (from: number, to: number) => state.durableTimes.filter((at) => at >= from && at <= to).length,
    async close() {
      abort.abort()
      await reading
    },
  }
}

const quantile = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN)
const median = (values: number[]) => quantile([...values].sort((a, b) => a - b), 0.5)
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits
const delaySummary = (delays: number[]) => {
  const sorted = [...delays].sort((a, b) => a - b)
  return { p50: round(quantile(sorted, 0.5), 2), p99: round(quantile(sorted, 0.99), 2), samples: sorted.length }
}

type Window = { delay: { p50: number; p99: number; samples: number }; missing: number; duplicates: number; achievedPerS: number; deliveredPerS: number }

/** `count` live clients for `seconds` of load: their delays, misses and duplicates. */
async function liveWindow(url: string, stamps: Stamps, count: number, seconds: number, during?: () => Promise<void>): Promise<Window> {
  const clients = await Promise.all(Array.from({ length: count }, () => streamClient(url, stamps)))
  const from = now() + EDGE_MS
  const settle = () => {
    stamps.absorb()
    for (const client of clients) client.settle()
  }
  const settling = setInterval(settle, 500)
  await Bun.sleep(seconds * 1000)
  const to = now() - EDGE_MS
  await during?.()
  // The last events of the window reach the clients and their stamps reach the log.
  await Bun.sleep(2 * EDGE_MS)
  clearInterval(settling)
  settle()
  await Promise.all(clients.map((client) => client.close()))
  const expected = stamps.eventsBetween(from, to)
  const delays = clients.flatMap((client) => client.state.delays)
  const unique = clients.map((client) => client.receivedBetween(from, to))
  return {
    delay: delaySummary(delays),
    missing: unique.reduce((sum, got) => sum + Math.max(0, expected - got), 0),
    duplicates: clients.reduce((sum, client) => sum + client.state.duplicates, 0),
    achievedPerS: round(expected / ((to - from) / 1000), 0),
    deliveredPerS: round(unique.reduce((sum, got) => sum + got, 0) / ((to - from) / 1000), 0),
  }
}

/** `count` clients resuming some `back` events before the last made durable, at once, while the load runs. */
async function catchUp(url: string, stamps: Stamps, count: number, back: number) {
  let point: ReturnType<Stamps['back']> = null
  const waitUntil = Date.now() + CATCH_UP_DEADLINE_MS
  while (!(point = (stamps.absorb(), stamps.back(back))) && Date.now() < waitUntil) await Bun.sleep(200)
  if (!point) throw new Error(`fewer than ${back} events made durable in ${CATCH_UP_DEADLINE_MS / 1000} s`)
  const { since, head, events } = point
  const started = now()
  const clients = await Promise.all(Array.from({ length: count }, () => streamClient(url, stamps, { lastEventId: since, until: head })))
  const deadline = Date.now() + CATCH_UP_DEADLINE_MS
  while (clients.some((client) => client.state.reachedAt === null) && Date.now() < deadline) await Bun.sleep(50)
  const seconds = (Math.max(...clients.map((client) => client.state.reachedAt ?? Infinity)) - started) / 1000
  await Bun.sleep(2 * EDGE_MS)
  stamps.absorb()
  for (const client of clients) client.settle()
  await Promise.all(clients.map((client) => client.close()))
  return {
    seconds,
    delays: clients.flatMap((client) => client.state.delays),
    duplicates: clients.reduce((sum, client) => sum + client.state.duplicates, 0),
    events,
    caughtUp: clients.filter((client) => client.state.reachedAt !== null).length,
    // Each must have had the events up to the head, once each.
    missing: clients.reduce((sum, client) => sum + (client.state.reachedAt === null ? events : Math.max(0, events - client.state.reachedCount)), 0),
  }
}

const stack = await startStack()
try {
  const connector = await startConnector(stack, { env: HEAP_ENV, flags: ['--log-level', 'debug'] })
  const pid = connector.process.pid
  const base = `http://127.0.0.1:${connector.port}`
  const url = `${base}/v1/api/ws/Stream`
  const workspaceId = await createWorkspace(stack.pg.sql, 'bench')
  await waitCaughtUp(stack, connector)
  const stamps = durableStamps(connector)

  // --- the Stream under a steady load: rounds of one client alone, then CLIENTS clients and a catch-up
  const load = postgres({ ...stack.pg.options, max: 8, connection: { synchronous_commit: 'on' } })
  const stopLoad = new AbortController()
  const loading = runPacedLoad(load, workspaceId, LOAD_TX_PER_S, 24 * 3600, 'inserts', stopLoad.signal)
  await Bun.sleep(WARMUP_SECONDS * 1000)
  const one: Window[] = []
  const many: Window[] = []
  for (let round_ = 1; round_ <= ROUNDS; round_++) {
    one.push(await liveWindow(url, stamps, 1, SECONDS))
    progress(`round ${round_}: one client: ${JSON.stringify(one.at(-1))}`)
    many.push(await liveWindow(url, stamps, CLIENTS, SECONDS))
    progress(`round ${round_}: ${CLIENTS} clients: ${JSON.stringify(many.at(-1))}`)
  }
  // Last, so that its history reads (each a sort of the whole history on FerretDB) weigh on no live round.
  const caughtUp = await catchUp(url, stamps, CLIENTS, CATCH_UP_EVENTS)
  progress(`catch-up: ${JSON.stringify({ ...caughtUp, delays: caughtUp.delays.length })}`)
  stopLoad.abort()
  const result = await loading
  await load.end()
  const streamPeakRss = peakRssMb(pid)
  await waitCaughtUp(stack, connector, CATCH_UP_MS)

  // --- a 100,000-task NDJSON Snapshot
  const filled = await createWorkspace(stack.pg.sql, 'snapshot')
  progress(`inserting ${SNAPSHOT_TASKS} tasks and streaming them through the connector`)
  for (let done = 0; done < SNAPSHOT_TASKS; done += FILL_STATEMENT_TASKS) await insertTasks(stack.pg.sql, filled, Math.min(FILL_STATEMENT_TASKS, SNAPSHOT_TASKS - done))
  await waitCaughtUp(stack, connector, CATCH_UP_MS)
  await Bun.sleep(1_000)
  const rssBefore = rssMb(pid)
  let rssHighest = rssBefore
  const sampler = setInterval(() => (rssHighest = Math.max(rssHighest, rssMb(pid))), RSS_SAMPLE_MS)
  const started = performance.now()
  const response = await fetch(`${base}/v1/api/ws/Snapshot?workspace=${filled}`, { headers: { accept: 'application/x-ndjson' } })
  let lines = 0
  for await (const chunk of response.body as ReadableStream<Uint8Array>) for (const byte of chunk) if (byte === 10) lines++
  const snapshotSeconds = (performance.now() - started) / 1000
  clearInterval(sampler)
  const tasks = lines - 1
  if (tasks !== SNAPSHOT_TASKS) throw new Error(`the snapshot held ${tasks} tasks, not ${SNAPSHOT_TASKS}`)
  progress(`snapshot: ${tasks} tasks in ${round(snapshotSeconds, 2)} s; RSS ${rssBefore} → highest ${rssHighest} MB`)

  const medianOf = (windows: Window[], pick: (window: Window) => number) => round(median(windows.map(pick)), 2)
  const report = {
    bench: 'http',
    clients: CLIENTS,
    rounds: ROUNDS,
    events: result.committed,
    load_events_per_s: medianOf(many, (window) => window.achievedPerS),
    load_asked_tx_per_s: LOAD_TX_PER_S,
    delivered_events_per_s: medianOf(many, (window) => window.deliveredPerS),
    sse_delay_ms: { p50: medianOf(many, (window) => window.delay.p50), p99: medianOf(many, (window) => window.delay.p99) },
    one_client_sse_delay_ms: { p50: medianOf(one, (window) => window.delay.p50), p99: medianOf(one, (window) => window.delay.p99) },
    p99_ratio_to_one_client: round(median(many.map((window) => window.delay.p99)) / median(one.map((window) => window.delay.p99)), 2),
    per_round: many.map((window, i) => ({ clients: window.delay, one_client: one[i]!.delay, achieved_events_per_s: window.achievedPerS })),
    catch_up: {
      clients: CLIENTS,
      events_back: caughtUp.events,
      // Null when not every client had caught up within the deadline; `caught_up` says how many had.
      seconds: Number.isFinite(caughtUp.seconds) ? round(caughtUp.seconds, 2) : null,
      caught_up: caughtUp.caughtUp,
      delivery_delay_ms: delaySummary(caughtUp.delays),
    },
    missing_deliveries: [...one, ...many].reduce((sum, window) => sum + window.missing, 0) + caughtUp.missing,
    duplicate_deliveries: [...one, ...many].reduce((sum, window) => sum + window.duplicates, 0) + caughtUp.duplicates,
    peak_rss_mb: streamPeakRss,
    snapshot_tasks: tasks,
    snapshot_seconds: round(snapshotSeconds, 2),
    snapshot_rss_growth_mb: rssHighest - rssBefore,
    load_max_schedule_lag_ms: round(result.maxScheduleLagMs),
    connector_heap_mb: Number(HEAP_ENV.BUN_JSC_forceRAMSize) / 1024 / 1024,
    cpus: readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? null,
  }
  await connector.kill()
  console.log(JSON.stringify(report))
} finally {
  await stack.stop()
}
