// The Prometheus metrics of extract-tasks, on prom-client, in a registry of their own (two services in one
// process, as in the tests' in-process runs, never share counters). Event and batch figures are counted
// where the pipeline reports them (durable batches, sink calls); state figures are read from the service's
// status when scraped, so they are never stale.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { TaskEvent } from '../events/events.ts'
import { finishedVisit } from '../events/life-cycle.ts'
import type { SinkName } from '../pipeline/delivery.ts'
import { parseLsn } from '../replication/lsn.ts'
import type { Status } from './server.ts'

const PREFIX = 'task_connector_'
// Batches hold 1 to 1,000 events (the pipeline's DEFAULT_MAX_BATCH_EVENTS).
const BATCH_SIZE_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000]
// Sink calls take a few ms when healthy and up to the attempt deadline when not.
// The Stream's delay target is 50 ms at the 99th percentile: fine buckets below and around it.
const STREAM_DELAY_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5]
// Time in a status: from a minute (a quick fix) to a month (work that waits for a release), in seconds.
const MINUTE = 60
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const STATUS_BUCKETS = [MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 4 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY]
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export type Metrics = ReturnType<typeof createMetrics>

export function createMetrics(status: () => Status) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: PREFIX })
  const registers = [registry]

  const gauge = (name: string, help: string, read: (status: Status) => number | null) =>
    new Gauge({
      name: PREFIX + name,
      help,
      registers,
      collect() {
        this.set(read(status()) ?? NaN)
      },
    })
  gauge('confirmed_lsn', 'The confirmed LSN of the slot, as a number.', (s) => Number(parseLsn(s.confirmedLsn)))
  gauge('lag_bytes', 'WAL between the server position and the confirmed LSN.', (s) => s.lagBytes)
  gauge('pending_changes', 'Changes read from the slot and not yet durable and published.', (s) => s.pendingChanges)
  gauge('reading_paused', 'Whether reading is paused because the pending changes reached their limit.', (s) => Number(s.readingPaused))
  gauge('replication_latency_seconds', 'Heartbeat round trip through the WAL.', (s) => (s.replicationLatencyMs === null ? null : s.replicationLatencyMs / 1000))
  gauge('streaming', 'Whether the connector streams with every sink healthy.', (s) => Number(s.state === 'streaming'))
  gauge('uptime_seconds', 'Seconds since start.', (s) => s.uptimeSeconds)
  const countedInStatus = (name: string, help: string, read: (status: Status) => number) =>
    new Counter({
      name: PREFIX + name,
      help,
      registers,
      collect() {
        this.reset()
        this.inc(read(status()))
      },
    })
  countedInStatus('reconnects_total', 'Times the replication stream was opened again after it had streamed.', (s) => s.reconnects)
  countedInStatus('catalog_reads_total', "Times the tracked tables' columns were read from the catalog (once per stream, and after a migration).", (s) => s.catalogReads)

  const events = new Counter({ name: PREFIX + 'events_total', help: 'Events made durable and published, by type.', labelNames: ['type'], registers })
  const batches = new Counter({ name: PREFIX + 'batches_total', help: 'Batches made durable and published.', registers })
  const batchSize = new Histogram({ name: PREFIX + 'batch_events', help: 'Events per durable batch.', buckets: BATCH_SIZE_BUCKETS, registers })
  const commitToPublish = new Histogram({
    name: PREFIX + 'commit_to_publish_seconds',
    help: 'From the transaction commit in PostgreSQL to its batch being durable and published.',
    buckets: LATENCY_BUCKETS,
    registers,
  })
  const statusTime = new Histogram({
    name: PREFIX + 'status_seconds',
    help: 'Finished visits of a task in a status whose length is known (from the transition that ended them), by status.',
    labelNames: ['status'],
    buckets: STATUS_BUCKETS,
    registers,
  })
  // Events at or below this id were observed: a batch replayed after a reconnect is not counted twice.
  let observedThrough = ''
  const sinkWrite = new Histogram({
    name: PREFIX + 'sink_write_seconds',
    help: 'Duration of one sink call (a batch written to MongoDB, or published), by sink and outcome.',
    labelNames: ['sink', 'outcome'],
    buckets: LATENCY_BUCKETS,
    registers,
  })
  const sinkFailures = new Counter({ name: PREFIX + 'sink_failures_total', help: 'Sink calls that failed (each is retried).', labelNames: ['sink'], registers })
  const streamClients = new Gauge({ name: PREFIX + 'stream_clients', help: 'SSE clients connected to /v1/api/ws/Stream.', registers })
  const streamEvents = new Counter({ name: PREFIX + 'stream_events_sent_total', help: 'Events sent to SSE clients (history and live).', registers })
  const streamDropped = new Counter({
    name: PREFIX + 'stream_clients_dropped_total',
    help: 'SSE clients disconnected because they did not read: their buffer overflowed, or they took nothing for --stream-idle-timeout.',
    registers,
  })
  const streamDelay = new Histogram({
    name: PREFIX + 'stream_delay_seconds',
    help: 'From a batch being durable and published to its events being written to a live SSE client, per client and batch.',
    buckets: STREAM_DELAY_BUCKETS,
    registers,
  })
  const snapshots = new Counter({ name: PREFIX + 'snapshot_requests_total', help: 'Snapshot requests, by format.', labelNames: ['format'], registers })
  const omitted = new Counter({
    name: PREFIX + 'events_omitted_total',
    help: "Events too large for a sink, written to it with their largest values left out (named in the copy's `omitted`), by sink.",
    labelNames: ['sink'],
    registers,
  })
  for (const sink of ['mongo', 'pubsub']) {
    sinkFailures.inc({ sink }, 0)
    omitted.inc({ sink }, 0)
  }

  return {
    registry,
    streamClients,
    streamEvents,
    streamDropped,
    streamDelay,
    snapshots,

    /** A batch is durable and published (the pipeline's onDurable). */
    durable(batch: TaskEvent[]) {
      if (!batch.length) return
      batches.inc()
      batchSize.observe(batch.length)
      const now = Date.now()
      for (const event of batch) {
        events.inc({ type: event.type })
        const visit = event.id > observedThrough ? finishedVisit(event) : null
        if (visit) statusTime.observe({ status: visit.status }, visit.ms / 1000)
      }
      if (batch.at(-1)!.id > observedThrough) observedThrough = batch.at(-1)!.id
      commitToPublish.observe((now - Date.parse(batch.at(-1)!.commitTime)) / 1000)
    },

    /** One sink call ended (the pipeline's observer). */
    sinkCall(sink: SinkName, outcome: 'ok' | 'failed', seconds: number) {
      sinkWrite.observe({ sink, outcome }, seconds)
      if (outcome === 'failed') sinkFailures.inc({ sink })
    },

    /** An event was too large for a sink (the pipeline's observer). */
    omitted(sink: SinkName) {
      omitted.inc({ sink })
    },

    async text(): Promise<string> {
      return registry.metrics()
    },
  }
}
