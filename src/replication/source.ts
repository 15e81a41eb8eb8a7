// The change source: a wal2json slot read as a sequence of decoded messages, across reconnects. It owns what lives
// as long as the process: the deliveries waiting for `read`, the progress the consumer acknowledged, the catalog
// connection, and what has been handed out whole (`skipThrough`); the slot (open-slot.ts), each session
// (session.ts, with its catalog gate and framer) and the reconnects (supervisor.ts) are each their own.
// Guarantees:
// - every transaction that commits after the resume point is handed out at least once, in commit order,
//   framed by begin and commit; one cut short by a lost connection is handed out again from its begin;
// - a transaction whose commit LSN is at or below the resume point, or already handed out whole, is skipped;
// - the slot is confirmed only up to what the consumer acknowledged (see progress.ts);
// - the socket is not read while the consumer holds more than the pending limits (what waits for a catalog
//   reading counted in);
// - while another process holds the slot, it stands by and takes the slot over within a second of its release;
// - an UPDATE is handed out decoded with a column list read after its transaction committed (catalog-gate.ts).

import postgres from 'postgres'
import type { Logger } from '../log.ts'
import { type Lsn, maxLsn } from './lsn.ts'
import { type SlotHooks, openSlot } from './open-slot.ts'
import { type Progress, createProgress } from './progress.ts'
import { type Deliveries, type Delivery, createDeliveries } from './deliveries.ts'
import { type Session, startSession } from './session.ts'
import { type SourceState, type SlotHolder, superviseSource } from './supervisor.ts'
import { describeTables } from './tables.ts'

export type { SourceState, SlotHolder }

export type SourceOptions = SlotHooks & {
  connection: postgres.Options<{}>
  slot: string
  schema: string
  tables: string[]
  /** Transactions committed at or below this LSN are skipped (the consumer has them already). */
  resumeLsn: Lsn
  statusIntervalMs: number
  maxPendingChanges?: number
  maxPendingBytes?: number
  /** Prefix of the logical messages to receive (our heartbeat); others are filtered out at the server. */
  messagePrefix?: string
  reconnect?: { initialDelayMs: number; maxDelayMs: number }
  /** A stop asked of the whole process: the source stops as `stop()` would (stop() still closes it). */
  signal?: AbortSignal
  log: Logger
}

export type { Delivery }

export type Source = ReturnType<typeof openSource>

// What the consumer may hold before the socket is no longer read. A decoded change with its event and
// documents costs a few KB, so this bounds the process to tens of MB whatever the transaction size.
const DEFAULT_MAX_PENDING_CHANGES = 4_000
const DEFAULT_MAX_PENDING_BYTES = 16 * 1024 * 1024
const DEFAULT_RECONNECT = { initialDelayMs: 500, maxDelayMs: 30_000 }
// Status updates at a third of wal_sender_timeout at the latest, so two may be lost before the server gives up.
const STATUS_PER_SENDER_TIMEOUT = 3
// The flush LSN moves per acknowledged batch; one status update per this many ms tells the server soon enough.
const ACK_STATUS_DELAY_MS = 50

export function openSource(options: SourceOptions) {
  const progress = createProgress(
    { maxPendingChanges: options.maxPendingChanges ?? DEFAULT_MAX_PENDING_CHANGES, maxPendingBytes: options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES },
    options.resumeLsn,
  )
  const deliveries = createDeliveries(progress)
  const querySql = postgres({ ...options.connection, max: 1, idle_timeout: 30, onnotice: () => {} })
  // Fires on stop() or on the process's stop signal: ends the reconnect backoff and the loop at once.
  const halt = new AbortController()
  options.signal?.addEventListener('abort', () => halt.abort(), { once: true })
  halt.signal.addEventListener('abort', deliveries.wake, { once: true })
  const streams: Streams = { session: null, skipThrough: options.resumeLsn, catalogReads: 0 }
  const status = statusSchedule(() => streams.session?.sendStatus())
  const streamedOnce = () => supervisor.generation > 0
  const attempt: Attempt = { options, progress, querySql, streams, signal: halt.signal, hand: deliveries.hand, scheduleStatus: status.schedule, streamedOnce }
  const supervisor = superviseSource({
    slot: options.slot,
    reconnect: options.reconnect ?? DEFAULT_RECONNECT,
    signal: halt.signal,
    connect: (streaming) => connect(attempt, streaming),
    sql: querySql,
    log: options.log,
  })
  void supervisor.running.then(deliveries.wake)

  return {
    /** The next messages; waits for at least one. Rejects when the source failed for good; [] once stopped. */
    async read(): Promise<Delivery> {
      const delivery = await deliveries.read(() => supervisor.failure !== null || supervisor.state === 'stopped' || halt.signal.aborted)
      if (!delivery.messages.length && supervisor.failure) throw supervisor.failure
      return delivery
    },
    /** Everything handed out up to and including `seq` is durable: the slot may confirm its commits. */
    acknowledge(seq: number) {
      const moved = progress.acknowledge(seq)
      streams.session?.acknowledged()
      if (moved) status.schedule()
    },
    async stop() {
      halt.abort()
      supervisor.stopping()
      status.cancel()
      await streams.session?.end()
      deliveries.wake()
      await supervisor.running
      await querySql.end({ timeout: 1 }).catch(() => {})
    },
    get state() {
      return supervisor.state
    },
    /** Who holds the slot while this source stands by; null otherwise. */
    get holder() {
      return supervisor.holder
    },
    /** The number of streams started: it changes on every (re)connection. */
    get generation() {
      return supervisor.generation
    },
    get confirmedLsn() {
      return progress.flushLsn
    },
    get receivedLsn() {
      return streams.session?.receivedLsn ?? progress.flushLsn
    },
    /** Reading from the socket is paused: the consumer, with what waits for a catalog reading, holds as much as it may. */
    get readingPaused() {
      return streams.session?.paused ?? false
    },
    get pendingChanges() {
      return progress.pendingChanges
    },
    get pendingBytes() {
      return progress.pendingBytes
    },
    /** Catalog readings so far: one per session, and one per change no reading had covered yet. */
    get catalogReads() {
      return streams.catalogReads
    },
    /** A normal (non-replication) connection to the source database, for catalog and status queries. */
    sql: querySql,
  }
}

/** Tells the server of a new flush LSN soon, once for all that moved it in the meantime. */
function statusSchedule(send: () => void) {
  let timer: ReturnType<typeof setTimeout> | null = null
  return {
    schedule() {
      timer ??= setTimeout(() => {
        timer = null
        send()
      }, ACK_STATUS_DELAY_MS)
    },
    cancel() {
      if (timer) clearTimeout(timer)
    },
  }
}

/** What outlives a session: the one streaming now, what was handed out whole, the catalog readings taken. */
type Streams = { session: Session | null; skipThrough: Lsn; catalogReads: number }

/** What each of the supervisor's attempts works with. */
type Attempt = {
  options: SourceOptions
  progress: Progress
  querySql: postgres.Sql
  signal: AbortSignal
  streams: Streams
  hand: Deliveries['hand']
  scheduleStatus(): void
  streamedOnce(): boolean
}

/** One attempt: the slot opened on a replication connection of its own, then one session until it ends. */
async function connect(attempt: Attempt, streaming: (startLsn: Lsn) => void) {
  const { options, progress, querySql, streams } = attempt
  const readCatalog = async () => {
    const reading = await describeTables(querySql, options.schema, options.tables, options.slot)
    streams.catalogReads++
    return reading
  }
  const replication = postgres({
    ...options.connection,
    max: 1,
    idle_timeout: 0,
    max_lifetime: 0,
    fetch_types: false,
    onnotice: () => {},
    connection: { ...options.connection.connection, replication: 'database', TimeZone: 'UTC', DateStyle: 'ISO' },
  })
  let session: Session | null = null
  try {
    const reading = await readCatalog()
    const senderTimeoutMs = await walSenderTimeoutMs(querySql)
    const statusIntervalMs =
      senderTimeoutMs > 0 ? Math.min(options.statusIntervalMs, Math.floor(senderTimeoutMs / STATUS_PER_SENDER_TIMEOUT)) : options.statusIntervalMs
    const opened = await openSlot({
      ...options,
      replication,
      sql: querySql,
      streamedOnce: attempt.streamedOnce(),
      flushLsn: () => progress.flushLsn,
      stopRequested: () => attempt.signal.aborted,
    })
    if (opened.createdAt !== null) streams.skipThrough = maxLsn(streams.skipThrough, opened.createdAt)
    const startLsn = maxLsn(progress.flushLsn, opened.slotLsn)
    session = await startSession({
      replication,
      slot: options.slot,
      startLsn,
      pluginOptions: pluginOptions(options),
      statusIntervalMs,
      skipThrough: streams.skipThrough,
      reading,
      readCatalog,
      progress,
      signal: attempt.signal,
      hand: attempt.hand,
      scheduleStatus: attempt.scheduleStatus,
      started: () => streaming(startLsn),
    })
    streams.session = session
    await session.closed
  } finally {
    if (session) streams.skipThrough = session.skipThrough
    streams.session = null
    await replication.end({ timeout: 1 }).catch(() => {})
  }
}

export function pluginOptions(options: Pick<SourceOptions, 'schema' | 'tables' | 'messagePrefix'>): [string, string][] {
  const escape = (name: string) => name.replace(/([,.\\ *])/g, '\\$1')
  const tables = options.tables.map((table) => `${escape(options.schema)}.${escape(table)}`).join(',')
  const list: [string, string][] = [
    ['format-version', '2'],
    ['include-xids', '1'],
    ['include-timestamp', '1'],
    ['include-lsn', '1'],
    ['include-transaction', '1'],
    ['include-type-oids', '1'],
    // Each column's attnum: its identity, which tells a column that existed at the change from one added since.
    ['include-column-positions', '1'],
    // The decoder works from type oids; the names would be a fifth of every message for nothing.
    ['include-types', '0'],
    ['add-tables', tables],
  ]
  if (options.messagePrefix) list.push(['add-msg-prefixes', options.messagePrefix])
  return list
}

async function walSenderTimeoutMs(sql: postgres.Sql): Promise<number> {
  const [row] = await sql`select setting::int * case unit when 's' then 1000 else 1 end as ms from pg_settings where name = 'wal_sender_timeout'`
  return Number(row?.ms ?? 0)
}
