// The extract-tasks service: slot → pipeline → MongoDB and Pub/Sub, with the HTTP API beside it.
// Start-up order matters: the sinks are checked first (a missing topic is a start-up error, not a
// stream held forever), then the slot is opened where the checkpoint says, and the stream begins.
// Guarantees: a stop (SIGTERM/SIGINT) at any moment, start-up included, exits cleanly and leaves nothing
// half-done; a slot is streamed from only when the checkpoint records that its initial load finished.

import { hostname } from 'node:os'
import postgres from 'postgres'
import type { ExtractTasksConfig } from './config.ts'
import { createHttpService, type ServiceState, type Status } from './http/server.ts'
import { runInitialLoad } from './initial-load.ts'
import { createLoadLease } from './load-lease.ts'
import { fillLifeCycles } from './sinks/life-cycle-backfill.ts'
import type { Logger } from './log.ts'
import { createPipeline } from './pipeline.ts'
import { formatLsn, parseLsn, ZERO_LSN } from './replication/lsn.ts'
import { readSlot } from './replication/slot.ts'
import { openSource } from './replication/source.ts'
import { MissingTableError, describeTables } from './replication/tables.ts'
import { StopRequested, unlessStopped } from './retry.ts'
import { connectMongo, createMongoSink, mongoAddress } from './sinks/mongo.ts'
import { createPublisher } from './sinks/pubsub.ts'
import { Unreachable, postgresStartupError } from './unreachable.ts'
import { PROGRAM, VERSION } from './version.ts'

export const TRACKED_TABLES = ['workspaces', 'tasks']
/** Prefix of our logical messages (the heartbeat); the source asks wal2json for these only. */
export const MESSAGE_PREFIX = 'task-connector'
const LAG_POLL_MS = 5_000
// How often the source's state is looked at for the HTTP service (a slot lost, a stream started again): a
// standby lasts at least a second, and a new stream is counted, so no change is missed.
const STATE_WATCH_MS = 100
/**
 * How long a stop may wait for the batches in flight (and the rest of the work under way). Healthy sinks
 * finish them in well under a second; with a sink down they would wait for it indefinitely. Stopping
 * without them loses nothing (the slot is not confirmed past them; they are replayed on the next start),
 * so the stop is bounded, under Kubernetes' default grace of 30 s. A second signal stops at once.
 */
export const STOP_GRACE_MS = 20_000
const CLOSE_AFTER_GIVING_UP_MS = 2_000

export async function extractTasks(config: ExtractTasksConfig, log: Logger): Promise<void> {
  const startedAt = Date.now()
  // The stop, wired before anything else: a signal during start-up is a clean stop too.
  const stop = new AbortController()
  // Closed in reverse order at the end, whatever was opened by then.
  const closers: (() => Promise<unknown>)[] = []
  let inFlightBatches = () => 0

  // A stop that takes longer than its grace, or a second signal, gives up on the work under way: the
  // program exits once `extractTasks` returns, whatever is left running.
  let grace: ReturnType<typeof setTimeout> | undefined
  let giveUp = () => {}
  const givenUp = new Promise<void>((resolve) => (giveUp = resolve))
  const stopWithoutWaiting = (why: string) => {
    log.warn(`${why}: stopping without the batches in flight (${inFlightBatches()}); the next start replays them`)
    giveUp()
  }
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) return stopWithoutWaiting(`${signal} again`)
    log.info(`${signal}: stopping after the batches in flight (at most ${STOP_GRACE_MS / 1000} s)`)
    grace = setTimeout(() => stopWithoutWaiting(`not done in ${STOP_GRACE_MS / 1000} s`), STOP_GRACE_MS)
    stop.abort()
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)

  try {
    await Promise.race([
      serve({ config, log, startedAt, signal: stop.signal, closers, exposeInFlight: (count) => (inFlightBatches = count) }),
      givenUp,
    ])
  } catch (error) {
    if (!(error instanceof StopRequested)) throw error
    log.info(`stopped during start-up (${error.message})`)
  } finally {
    // Once given up, closing does not wait for a server that does not answer either.
    const closed = (async () => {
      for (const close of closers.reverse()) await close().catch(() => {})
    })()
    await Promise.race([closed, givenUp.then(() => Bun.sleep(CLOSE_AFTER_GIVING_UP_MS))])
    clearTimeout(grace)
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
  }
}

type ServeOptions = {
  config: ExtractTasksConfig
  log: Logger
  startedAt: number
  signal: AbortSignal
  closers: (() => Promise<unknown>)[]
  exposeInFlight(count: () => number): void
}

/** Starts everything and streams until the signal fires; each start-up step gives way to the signal at once. */
async function serve({ config, log, startedAt, signal, closers, exposeInFlight }: ServeOptions): Promise<void> {
  const step = <T>(what: string, work: Promise<T>) => unlessStopped(work, signal, what)
  const connection: postgres.Options<{}> = {
    host: config.postgres.host,
    port: config.postgres.port,
    database: config.postgres.database,
    user: config.postgres.user,
    password: config.postgres.password?.reveal(),
    connect_timeout: 10,
    // Names this process in pg_stat_replication, where a standby (and an operator) sees who holds the slot.
    connection: { application_name: `${PROGRAM}@${hostname()}` },
  }
  const postgresAddress = `postgresql://${config.postgres.user}@${config.postgres.host}:${config.postgres.port}/${config.postgres.database}`
  log.info(`starting: slot ${config.slot} of ${postgresAddress}, MongoDB ${mongoAddress(config.mongo.url)} database ${config.mongo.database}, Pub/Sub topic ${config.pubsub.topic}`)

  const catalog = postgres({ ...connection, max: 1, onnotice: () => {} })
  // Only to name a missing table at start-up: the column types are taken from each change (see sinks/mongo.ts).
  await step(
    'reading the tables from PostgreSQL',
    describeTables(catalog, config.schema, TRACKED_TABLES).catch((error) => {
      throw error instanceof MissingTableError ? error : postgresStartupError(postgresAddress, `reading the columns of ${config.schema}.${TRACKED_TABLES.join(', ')}`, error)
    }),
  ).finally(() => catalog.end({ timeout: 1 }))

  const mongoClient = await step('connecting to MongoDB', connectMongo(config.mongo.url))
  closers.push(() => mongoClient.close())
  const mongo = createMongoSink(mongoClient, config.mongo.database)
  const mongoStep = <T>(what: string, work: Promise<T>) =>
    step(what, work.catch((error) => Promise.reject(new Unreachable('MongoDB', mongoAddress(config.mongo.url), what, error))))
  await mongoStep(`creating the indexes of database ${config.mongo.database}`, mongo.ensureIndexes())
  const publisher = createPublisher({ ...config.pubsub, emulatorHost: process.env.PUBSUB_EMULATOR_HOST })
  closers.push(() => publisher.close())
  await step('checking the Pub/Sub topic', publisher.start())

  const checkpoint = await mongoStep(`reading the checkpoint of slot ${config.slot}`, mongo.readCheckpoint(config.slot))
  if (!checkpoint?.lifeCycleFilledAt) {
    // Before anything streams, so that no row state is read from a document still lacking its life cycle.
    const filled = await mongoStep('filling in the life cycle of tasks from the history', fillLifeCycles(mongo.db))
    await mongoStep(`recording the life cycle filled in`, mongo.writeCheckpoint({ slot: config.slot, lifeCycleFilledAt: new Date() }))
    if (filled) log.info(`life cycle filled in from task_events for ${filled} tasks written before it was kept`)
  }
  const existingSlot = await step(
    'reading the slot',
    (async () => {
      const admin = postgres({ ...connection, max: 1, onnotice: () => {} })
      return readSlot(admin, config.slot).finally(() => admin.end({ timeout: 1 }))
    })(),
  )
  const loadFinished = checkpoint?.initialLoad === 'done'
  const resumeLsn = loadFinished && existingSlot && checkpoint.lsn ? parseLsn(checkpoint.lsn) : ZERO_LSN

  let heartbeatSent = new Map<string, number>()
  let replicationLatencyMs: number | null = null
  let lagBytes: number | null = null
  let slotWal: { walStatus: string | null; retainedBytes: number | null } = { walStatus: null, retainedBytes: null }

  const loadLease = createLoadLease({ mongo, slot: config.slot, retryMongo: (work) => pipeline.retryMongo(work), log })
  const source = openSource({
    connection,
    slot: config.slot,
    schema: config.schema,
    tables: TRACKED_TABLES,
    resumeLsn,
    statusIntervalMs: config.statusIntervalMs,
    messagePrefix: MESSAGE_PREFIX,
    log: log.child({ component: 'replication' }),
    signal,
    // Read again here rather than trusted from start-up: the slot may have been held by another process then.
    acceptSlot: () => (config.initialLoad === 'never' ? Promise.resolve(true) : loadLease.accept()),
    // Claimed before the slot exists, so that no slot is ever left without a record of its unfinished load.
    beforeCreateSlot: () => loadLease.claim(),
    async onSlotCreated(slot, stopRequested) {
      if (config.initialLoad === 'never') return loadLease.finish(formatLsn(slot.consistentPoint))
      await loadLease.whileLoading(() =>
        runInitialLoad({ connection, schema: config.schema, slot, mongo, deliver: pipeline.deliverLoaded, retryMongo: pipeline.retryMongo, recordDone: loadLease.finish, log, stopRequested }),
      )
    },
  })
  closers.push(() => source.stop())

  const pipeline = createPipeline({
    source,
    mongo,
    publisher,
    slot: config.slot,
    log: log.child({ component: 'pipeline' }),
    signal,
    onDurable: (events) => http.durable(events),
    observeSink: (sink, outcome, seconds) => http.observeSink(sink, outcome, seconds),
    observeOmitted: (sink) => http.observeOmitted(sink),
    onMessage(prefix, content) {
      if (prefix !== MESSAGE_PREFIX) return
      const sentAt = heartbeatSent.get(content)
      if (sentAt === undefined) return
      replicationLatencyMs = Date.now() - sentAt
      heartbeatSent.delete(content)
    },
  })
  exposeInFlight(() => pipeline.state.inFlightBatches)

  const state = (): ServiceState => {
    if (signal.aborted) return 'stopping'
    if (source.state === 'starting' || source.state === 'standby') return source.state
    if (source.state === 'streaming' && !pipeline.state.failingSinks.length) return 'streaming'
    return 'reconnecting'
  }
  const status = (): Status => ({
    name: PROGRAM,
    version: VERSION,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    slot: config.slot,
    state: state(),
    confirmedLsn: formatLsn(source.confirmedLsn),
    lastEventId: pipeline.state.lastEventId,
    lagBytes,
    eventsTotal: pipeline.state.eventsTotal,
    slotHolder: source.holder,
    failingSinks: pipeline.state.failingSinks,
    slotWalStatus: slotWal.walStatus,
    retainedWalBytes: slotWal.retainedBytes,
    replicationLatencyMs,
    pendingChanges: source.pendingChanges,
    readingPaused: source.readingPaused,
    // Every stream started after the first is a reconnection (or a takeover after standing by).
    reconnects: Math.max(0, source.generation - 1),
    catalogReads: source.catalogReads,
    ready: state() === 'streaming',
  })

  const http = createHttpService({
    status,
    db: mongo.db,
    slot: config.slot,
    checkTopic: () => publisher.checkTopic(),
    auth: config.auth,
    maxStreamClients: config.maxStreamClients,
    streamIdleTimeoutMs: config.streamIdleTimeoutMs,
    log: log.child({ component: 'http' }),
  })
  closers.push(() => http.close())
  const server = http.app.listen({ hostname: config.http.host, port: config.http.port })
  // Closing active connections too: SSE clients would otherwise hold the stop.
  closers.push(() => server.stop(true))
  log.info(`listening on http://${config.http.host}:${config.http.port}`)

  const timers: ReturnType<typeof setInterval>[] = []
  closers.push(async () => timers.forEach(clearInterval))
  if (config.heartbeatIntervalMs > 0)
    timers.push(
      setInterval(() => {
        if (source.state !== 'streaming') return
        const content = `${startedAt}:${Date.now()}`
        heartbeatSent.set(content, Date.now())
        // Unanswered heartbeats (a stream that was down) are forgotten rather than kept forever.
        if (heartbeatSent.size > 100) heartbeatSent = new Map([...heartbeatSent].slice(-10))
        source.sql`select pg_logical_emit_message(false, ${MESSAGE_PREFIX}, ${content})`.catch((error) =>
          log.debug(`heartbeat not written: ${error.message}`),
        )
      }, config.heartbeatIntervalMs),
    )
  let seen = { state: source.state, generation: source.generation }
  timers.push(
    setInterval(() => {
      const now = { state: source.state, generation: source.generation }
      if (now.state === 'standby' && seen.state !== 'standby') http.slotLost()
      else if (now.generation > seen.generation && seen.generation > 0) http.streamRestarted()
      seen = now
    }, STATE_WATCH_MS),
  )
  const pollLag = () =>
    source.sql`
      select (pg_current_wal_lsn() - '0/0')::text as position, slot.wal_status, (pg_current_wal_lsn() - slot.restart_lsn)::text as retained
      from (select 1) as one left join pg_replication_slots as slot on slot.slot_name = ${config.slot}`
      .then(([row]) => {
        lagBytes = Math.max(0, Number(BigInt(row!.position) - source.confirmedLsn))
        slotWal = { walStatus: row!.wal_status ?? null, retainedBytes: row!.retained === null ? null : Number(row!.retained) }
      })
      .catch(() => {
        lagBytes = null
        slotWal = { walStatus: null, retainedBytes: null }
      })
  timers.push(setInterval(pollLag, LAG_POLL_MS))

  // On a stop, the batches in flight finish (or are given up by their retries), then the source closes.
  signal.addEventListener('abort', () => void pipeline.stop().then(() => source.stop()), { once: true })
  await pipeline.run()
  await source.stop()
  log.info(`stopped at ${formatLsn(source.confirmedLsn)}`)
}
