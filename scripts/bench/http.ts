// bench:http — the HTTP API under load: 100 SSE clients of /v1/api/ws/Stream while a steady 1,000 single-row
// transactions a second are written, then a 100,000-task NDJSON Snapshot.
//
// Delay, `sse_delay_ms`: from the moment the pipeline reports a batch durable in both sinks (onDurable) to
// the moment its events are written to each client's response, per client and batch: the connector's
// task_connector_stream_delay_seconds histogram, read before and after the measured window (quantiles
// interpolated within its buckets; loopback transit to the client adds microseconds). Beside it,
// `publish_to_client_ms`: per event and client, its receipt in this process minus the Pub/Sub emulator's
// publishTime (pstest stamps it on receipt) — which also counts how far MongoDB (FerretDB) lags behind
// Pub/Sub. The first seconds (the load's and the connector's start) are left out. The clients run in this
// process and read only the ids, so that they cost as little as they can on the two shared cores.
// Snapshot: 100,000 tasks inserted and streamed through the connector first; then the NDJSON Snapshot is
// read to the end while the connector's RSS is sampled; growth = highest sample − RSS before the request.
// Progress on stderr; the last line on stdout is the JSON report of /work/shared/benchmarks.md.
// The connector runs with the heap budget it ships with (128 MB); --heap-mb sets another, to see what the
// garbage collector's pauses under that budget add to the delay's tail.
//   bun scripts/bench/http.ts [--clients 100] [--load-tx-per-s 1000] [--seconds 20] [--snapshot-tasks 100000] [--heap-mb 128]

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { peakRssMb, rssMb } from '../../test/support/memory.ts'
import { CONNECTOR_MEMORY_ENV, TOPIC, startConnector, startStack, waitCaughtUp } from '../../test/support/stack.ts'
import { createWorkspace, insertTasks } from '../../test/support/workspace.ts'
import { runPacedLoad } from './pipeline-load.ts'

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '100' },
    'load-tx-per-s': { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '20' },
    'warmup-seconds': { type: 'string', default: '3' },
    'snapshot-tasks': { type: 'string', default: '100000' },
    'heap-mb': { type: 'string' },
  },
})
const CLIENTS = Number(values.clients)
const LOAD_TX_PER_S = Number(values['load-tx-per-s'])
const SECONDS = Number(values.seconds)
const WARMUP_SECONDS = Number(values['warmup-seconds'])
const SNAPSHOT_TASKS = Number(values['snapshot-tasks'])
const HEAP_ENV = values['heap-mb'] ? { BUN_JSC_forceRAMSize: String(Number(values['heap-mb']) * 1024 * 1024) } : CONNECTOR_MEMORY_ENV
const RSS_SAMPLE_MS = 20
const CATCH_UP_MS = 900_000
// Tasks inserted per statement when filling the table: transactions the connector takes in a few batches.
const FILL_STATEMENT_TASKS = 5_000

const progress = (message: string) => process.stderr.write(`[bench:http] ${message}\n`)

const ID_FIELD = 'id: '

/** An SSE client that records, for each event id, when it arrived (ms since the epoch). */
async function idRecorder(url: string, received: Map<string, number[]>) {
  const abort = new AbortController()
  const response = await fetch(url, { signal: abort.signal })
  if (response.status !== 200) throw new Error(`stream answered ${response.status}`)
  const reading = (async () => {
    const decoder = new TextDecoder()
    let rest = ''
    try {
      for await (const chunk of response.body as ReadableStream<Uint8Array>) {
        const at = performance.timeOrigin + performance.now()
        const text = rest + decoder.decode(chunk, { stream: true })
        // Whole frames only: a chunk may end anywhere, even inside "id: ", and the rest waits for the next one.
        const frames = text.split('\n\n')
        rest = frames.pop()!
        for (const frame of frames) {
          if (!frame.startsWith(ID_FIELD)) continue
          const id = frame.slice(ID_FIELD.length, frame.indexOf('\n'))
          let times = received.get(id)
          if (!times) received.set(id, (times = []))
          times.push(at)
        }
      }
    } catch {}
  })()
  return { close: () => abort.abort(), reading }
}

type Histogram = { le: number[]; counts: number[] }

/** The stream delay histogram's cumulative bucket counts, from /metrics. */
async function streamDelayHistogram(base: string): Promise<Histogram> {
  const text = await (await fetch(`${base}/metrics`)).text()
  const buckets = [...text.matchAll(/^task_connector_stream_delay_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)]
  return { le: buckets.map((bucket) => Number(bucket[1] === '+Inf' ? Infinity : bucket[1])), counts: buckets.map((bucket) => Number(bucket[2])) }
}

/** The q-quantile, in ms, of the observations between two readings, interpolated within its bucket. */
function histogramQuantile(before: Histogram, after: Histogram, q: number): number {
  const counts = after.counts.map((count, i) => count - (before.counts[i] ?? 0))
  const total = counts.at(-1)!
  const rank = q * total
  const index = counts.findIndex((count) => count >= rank)
  const upper = after.le[index]!
  const lower = index ? after.le[index - 1]! : 0
  if (upper === Infinity) return lower * 1000
  const below = index ? counts[index - 1]! : 0
  return (lower + ((upper - lower) * (rank - below)) / Math.max(1, counts[index]! - below)) * 1000
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits

const stack = await startStack()
try {
  const connector = await startConnector(stack, { env: HEAP_ENV })
  const pid = connector.process.pid
  const base = `http://127.0.0.1:${connector.port}`
  const workspaceId = await createWorkspace(stack.pg.sql, 'bench')
  await waitCaughtUp(stack, connector)

  // --- the Stream under a steady load
  const received = new Map<string, number[]>()
  const clients = await Promise.all(Array.from({ length: CLIENTS }, () => idRecorder(`${base}/v1/api/ws/Stream`, received)))
  progress(`${CLIENTS} clients connected; ${LOAD_TX_PER_S} transactions/s for ${WARMUP_SECONDS + SECONDS} s`)
  const load = postgres({ ...stack.pg.options, max: 8, connection: { synchronous_commit: 'on' } })
  const loading = runPacedLoad(load, workspaceId, LOAD_TX_PER_S, WARMUP_SECONDS + SECONDS, 'inserts')
  await Bun.sleep(WARMUP_SECONDS * 1000)
  const histogramBefore = await streamDelayHistogram(base)
  const result = await loading
  await load.end()
  // FerretDB may fall behind the load on a busy machine: the connector holds its backlog meanwhile.
  await waitCaughtUp(stack, connector, CATCH_UP_MS)
  const messages = (await stack.pubsub.messages(TOPIC)).filter((message) => message.attributes.type === 'task.created')
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline && messages.some((message) => (received.get(message.attributes.eventId!)?.length ?? 0) < CLIENTS)) await Bun.sleep(100)
  const histogramAfter = await streamDelayHistogram(base)
  const streamPeakRss = peakRssMb(pid)
  for (const client of clients) client.close()

  const measuredFrom = result.startedAt + WARMUP_SECONDS * 1000
  const delays: number[] = []
  let deliveries = 0
  let missing = 0
  let firstReceipt = Infinity
  let lastReceipt = 0
  for (const message of messages) {
    const times = received.get(message.attributes.eventId!) ?? []
    missing += CLIENTS - times.length
    deliveries += times.length
    for (const at of times) {
      firstReceipt = Math.min(firstReceipt, at)
      lastReceipt = Math.max(lastReceipt, at)
      if (message.publishTime.getTime() >= measuredFrom) delays.push(at - message.publishTime.getTime())
    }
  }
  delays.sort((a, b) => a - b)
  const sseDelay = { p50: round(histogramQuantile(histogramBefore, histogramAfter, 0.5)), p99: round(histogramQuantile(histogramBefore, histogramAfter, 0.99)) }
  progress(`${messages.length} events, ${deliveries} deliveries, ${missing} missing; durable-to-client p50 ${sseDelay.p50} ms, p99 ${sseDelay.p99} ms; ` +
    `publish-to-client p50 ${round(quantile(delays, 0.5))} ms, p99 ${round(quantile(delays, 0.99))} ms`)

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

  const report = {
    bench: 'http',
    clients: CLIENTS,
    events: messages.length,
    load_events_per_s: LOAD_TX_PER_S,
    delivered_events_per_s: round(deliveries / ((lastReceipt - firstReceipt) / 1000), 0),
    delivered_events_per_s_per_client: round(deliveries / CLIENTS / ((lastReceipt - firstReceipt) / 1000), 0),
    missing_deliveries: missing,
    sse_delay_ms: sseDelay,
    publish_to_client_ms: { p50: round(quantile(delays, 0.5)), p99: round(quantile(delays, 0.99)) },
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
