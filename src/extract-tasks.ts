// The extract-tasks service: slot → pipeline → MongoDB and Pub/Sub, with the HTTP API beside it.
// Start-up order matters: the sinks are checked first (a missing topic is a start-up error, not a
// stream held forever), then the slot is opened where the checkpoint says, and the stream begins.

import postgres from 'postgres'
import type { ExtractTasksConfig } from './config.ts'
import { createHttpService, type ServiceState, type Status } from './http/server.ts'
import { camelCase } from './events/events.ts'
import { runInitialLoad } from './initial-load.ts'
import type { Logger } from './log.ts'
import { createPipeline } from './pipeline.ts'
import { formatLsn, parseLsn, ZERO_LSN } from './replication/lsn.ts'
import { dropSlot, readSlot } from './replication/slot.ts'
import { openSource } from './replication/source.ts'
import { describeTables } from './replication/tables.ts'
import { connectMongo, createMongoSink } from './sinks/mongo.ts'
import { createPublisher } from './sinks/pubsub.ts'
import { PROGRAM, VERSION } from './version.ts'

export const TRACKED_TABLES = ['workspaces', 'tasks']
/** Prefix of our logical messages (the heartbeat); the source asks wal2json for these only. */
export const MESSAGE_PREFIX = 'task-connector'
const TIMESTAMP_TYPES = new Set([1114, 1184])
const LAG_POLL_MS = 5_000
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
  const connection: postgres.Options<{}> = {
    host: config.postgres.host,
    port: config.postgres.port,
    database: config.postgres.database,
    user: config.postgres.user,
    password: config.postgres.password?.reveal(),
    connect_timeout: 10,
  }

  const catalog = postgres({ ...connection, max: 1, onnotice: () => {} })
  const columns = await describeTables(catalog, config.schema, TRACKED_TABLES).finally(() => catalog.end({ timeout: 1 }))
  const timestampFields = new Set(
    [...columns.values()].flat().filter((column) => TIMESTAMP_TYPES.has(column.typeOid)).map((column) => camelCase(column.name)),
  )

  const mongoClient = await connectMongo(config.mongo.url)
  const mongo = createMongoSink(mongoClient, config.mongo.database, timestampFields)
  await mongo.ensureIndexes()
  const publisher = createPublisher({ ...config.pubsub, emulatorHost: process.env.PUBSUB_EMULATOR_HOST })
  await publisher.start()

  const checkpoint = await mongo.readCheckpoint(config.slot)
  if (checkpoint?.initialLoad === 'running') {
    // A load cut short: its slot's snapshot is gone, so the load starts over from a fresh slot.
    log.warn(`the initial load of slot ${config.slot} did not finish; dropping the slot to load again`)
    const admin = postgres({ ...connection, max: 1, onnotice: () => {} })
    await dropSlot(admin, config.slot).finally(() => admin.end({ timeout: 1 }))
  }
  const existingSlot = await (async () => {
    const admin = postgres({ ...connection, max: 1, onnotice: () => {} })
    return readSlot(admin, config.slot).finally(() => admin.end({ timeout: 1 }))
  })()
  const resumeLsn = checkpoint && checkpoint.initialLoad !== 'running' && existingSlot ? parseLsn(checkpoint.lsn) : ZERO_LSN

  let heartbeatSent = new Map<string, number>()
  let replicationLatencyMs: number | null = null
  let lagBytes: number | null = null
  let stopping = false

  const source = openSource({
    connection,
    slot: config.slot,
    schema: config.schema,
    tables: TRACKED_TABLES,
    resumeLsn,
    statusIntervalMs: config.statusIntervalMs,
    messagePrefix: MESSAGE_PREFIX,
    log: log.child({ component: 'replication' }),
    async onSlotCreated(slot, stopRequested) {
      if (config.initialLoad === 'never') {
        await pipeline.retryMongo(() => mongo.writeCheckpoint({ slot: slot.name, lsn: formatLsn(slot.consistentPoint), initialLoad: 'done' }))
        return
      }
      await runInitialLoad({ connection, schema: config.schema, slot, mongo, deliver: pipeline.deliver, retryMongo: pipeline.retryMongo, log, stopRequested })
    },
  })

  const pipeline = createPipeline({
    source,
    mongo,
    publisher,
    slot: config.slot,
    log: log.child({ component: 'pipeline' }),
    onDurable: (events) => http.durable(events),
    observeSink: (sink, outcome, seconds) => http.observeSink(sink, outcome, seconds),
    onMessage(prefix, content) {
      if (prefix !== MESSAGE_PREFIX) return
      const sentAt = heartbeatSent.get(content)
      if (sentAt === undefined) return
      replicationLatencyMs = Date.now() - sentAt
      heartbeatSent.delete(content)
    },
  })

  const state = (): ServiceState => {
    if (stopping) return 'stopping'
    if (source.state === 'starting') return 'starting'
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
    failingSinks: pipeline.state.failingSinks,
    replicationLatencyMs,
    pendingChanges: source.pendingChanges,
    readingPaused: source.readingPaused,
    reconnects: source.reconnects,
    ready: state() === 'streaming',
  })

  const http = createHttpService({
    status,
    db: mongo.db,
    slot: config.slot,
    pubsub: { ...config.pubsub, emulatorHost: process.env.PUBSUB_EMULATOR_HOST },
    auth: config.auth,
    maxStreamClients: config.maxStreamClients,
    log: log.child({ component: 'http' }),
  })
  const server = http.app.listen({ hostname: config.http.host, port: config.http.port })
  log.info(`listening on http://${config.http.host}:${config.http.port}`)

  const timers: ReturnType<typeof setInterval>[] = []
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
  timers.push(
    setInterval(() => {
      source.sql`select (pg_current_wal_lsn() - '0/0')::text as position`
        .then(([row]) => (lagBytes = Math.max(0, Number(BigInt(row!.position) - source.confirmedLsn))))
        .catch(() => (lagBytes = null))
    }, LAG_POLL_MS),
  )

  // A stop that takes longer than its grace, or a second signal, gives up on the work under way: the
  // program exits once `extractTasks` returns, whatever is left running.
  let grace: ReturnType<typeof setTimeout> | undefined
  let giveUp = () => {}
  const givenUp = new Promise<void>((resolve) => (giveUp = resolve))
  const stopWithoutWaiting = (why: string) => {
    log.warn(`${why}: stopping without the batches in flight (${pipeline.state.inFlightBatches}); the next start replays them`)
    giveUp()
  }
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return stopWithoutWaiting(`${signal} again`)
    stopping = true
    log.info(`${signal}: stopping after the batches in flight (at most ${STOP_GRACE_MS / 1000} s)`)
    grace = setTimeout(() => stopWithoutWaiting(`not done in ${STOP_GRACE_MS / 1000} s`), STOP_GRACE_MS)
    // A failure here fails pipeline.run() too, which reports it.
    pipeline.stop().then(() => source.stop()).catch(() => {})
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)

  try {
    await Promise.race([pipeline.run(), givenUp])
  } finally {
    for (const timer of timers) clearInterval(timer)
    const closed = (async () => {
      await source.stop()
      await server.stop(true)
      await http.close()
      await publisher.close()
      await mongoClient.close()
    })()
    // Once given up, closing does not wait for a server that does not answer either.
    await Promise.race([closed, givenUp.then(() => Bun.sleep(CLOSE_AFTER_GIVING_UP_MS))])
    clearTimeout(grace)
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    log.info(`stopped at ${formatLsn(source.confirmedLsn)}`)
  }
}
