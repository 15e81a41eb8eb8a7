// The change source: a wal2json slot read as a sequence of decoded messages, across reconnects.
// Guarantees:
// - every transaction that commits after the resume point is handed out at least once, in commit order,
//   framed by begin and commit; one cut short by a lost connection is handed out again from its begin;
// - a transaction whose commit LSN is at or below the resume point, or already handed out whole, is skipped;
// - the slot is confirmed only up to what the consumer acknowledged (see progress.ts);
// - the socket is not read while the consumer holds more than the pending limits (what waits for a catalog
//   reading counted in);
// - while another process holds the slot, it stands by and takes the slot over within a second of its release;
// - an UPDATE is handed out decoded with a column list read after its transaction committed (tables.ts says why
//   that list is exact for it); when its columns disagree with a list read earlier (a migration since, or an
//   unchanged TOAST value), the catalog is read again first, in order, what follows it held meanwhile (the socket
//   still read up to the pending limits). One reading serves every transaction committed before it: none during
//   catch-up, at most one per MIN_READING_INTERVAL_MS when live.

import postgres from 'postgres'
import { decodeWal2json } from '../decode/wal2json.ts'
import type { Begin, DecodedMessage } from '../decode/types.ts'
import type { XLogData } from './messages.ts'
import type { Logger } from '../log.ts'
import { type Lsn, ZERO_LSN, formatLsn, maxLsn } from './lsn.ts'
import { createProgress } from './progress.ts'
import { backoffDelay, sleep } from '../retry.ts'
import { type CreatedSlot, type SlotInfo, SlotError, checkSlot, createSlot, dropSlot, identifySystem, readSlot } from './slot.ts'
import { type ReplicationStream, startReplication } from './stream.ts'
import { type CatalogReading, NO_READING, describeTables } from './tables.ts'

export type SourceState = 'starting' | 'streaming' | 'reconnecting' | 'standby' | 'stopping' | 'stopped'

/** The process that streams from the slot while this one stands by, as PostgreSQL sees it. */
export type SlotHolder = { pid: number; clientAddress: string | null; applicationName: string | null }

export type SourceOptions = {
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
  /**
   * Asked, before the first stream, of a slot that exists and no other process holds: false drops it and
   * creates it again (its initial load never finished, so streaming from it would miss the existing rows).
   */
  acceptSlot?(slot: SlotInfo): Promise<boolean>
  /** Called before the slot is created (the record that a load is under way is written here). */
  beforeCreateSlot?(): Promise<void>
  /**
   * Called when the slot had to be created, before streaming starts, while its exported snapshot is valid
   * (the initial load runs here). The stream starts after it returns. Work that `stopRequested` cuts short
   * ends by throwing.
   */
  onSlotCreated?(slot: CreatedSlot, stopRequested: () => boolean): Promise<void>
  reconnect?: { initialDelayMs: number; maxDelayMs: number }
  /** A stop asked of the whole process: the source stops as `stop()` would (stop() still closes it). */
  signal?: AbortSignal
  log: Logger
}

/** A run of messages; message i has sequence number `firstSeq + i`, which `acknowledge` takes. */
export type Delivery = { firstSeq: number; messages: DecodedMessage[] }

export type Source = ReturnType<typeof openSource>

// What the consumer may hold before the socket is no longer read. A decoded change with its event and
// documents costs a few KB, so this bounds the process to tens of MB whatever the transaction size.
const DEFAULT_MAX_PENDING_CHANGES = 4_000
const DEFAULT_MAX_PENDING_BYTES = 16 * 1024 * 1024
const DEFAULT_RECONNECT = { initialDelayMs: 500, maxDelayMs: 30_000 }
// While another process holds the slot: a short, fixed wait between attempts, so that a standby takes over
// within about this long once the slot is released (at once on the holder's crash: PostgreSQL ends its
// walsender when the connection drops; after a network cut, once wal_sender_timeout ends it). One attempt is
// one query to the server a second.
const STANDBY_RETRY_MS = 1_000
const SLOT_IN_USE = '55006'
// Status updates at a third of wal_sender_timeout at the latest, so two may be lost before the server gives up.
const STATUS_PER_SENDER_TIMEOUT = 3
// The flush LSN moves per acknowledged batch; one status update per this many ms tells the server soon enough.
const ACK_STATUS_DELAY_MS = 50
// Catalog readings at most this often. One reading covers every transaction committed before it, so under a
// steady stream of updates that leave a large value alone the readings stay at 20 a second whatever the rate
// (a query each costs both ends some 0.15 ms of CPU: one per update would cost more than decoding it), and such
// an update waits at most this long for its reading while the socket is still read.
const MIN_READING_INTERVAL_MS = 50

// SQLSTATEs after which a later attempt may succeed.
const RETRYABLE_SQLSTATES = new Set([
  '55006', // object_in_use: another process streams from the slot
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: the server is starting up or shutting down
  '53300', // too_many_connections
  '40001', // serialization_failure
])

export function openSource(options: SourceOptions) {
  const log = options.log
  const limits = {
    maxPendingChanges: options.maxPendingChanges ?? DEFAULT_MAX_PENDING_CHANGES,
    maxPendingBytes: options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES,
  }
  const reconnect = options.reconnect ?? DEFAULT_RECONNECT
  const progress = createProgress(limits, options.resumeLsn)
  const querySql = postgres({ ...options.connection, max: 1, idle_timeout: 30, onnotice: () => {} })

  let state: SourceState = 'starting'
  let stream: ReplicationStream | null = null
  let paused = false
  let failure: Error | null = null
  // Fires on stop() or on the process's stop signal: ends the reconnect backoff and the loop at once.
  const halt = new AbortController()
  options.signal?.addEventListener('abort', () => halt.abort(), { once: true })
  halt.signal.addEventListener('abort', () => wake?.(), { once: true })
  const stopRequested = () => halt.signal.aborted
  let streamedOnce = false
  let holder: SlotHolder | null = null
  let standbySince: number | null = null
  // Streams started so far: a consumer that sees it change knows the slot may have been streamed by another
  // process in between.
  let generation = 0

  // Transaction framing: the begin is held back until its first change, so empty transactions (those
  // touching only untracked tables) are never handed out; their commit is confirmed after what is pending.
  let heldBegin: Begin | null = null
  let skipping = false
  let skipThrough = options.resumeLsn
  let catalog: CatalogReading = NO_READING
  // The transaction being received, and whether `catalog` was read after it committed.
  let transactionXid = 0
  let transactionCovered = false
  // While the catalog is read again: the messages received meanwhile, in order, decoded once it answers, and the
  // transaction the first of them belongs to.
  let held: XLogData[] | null = null
  let heldBytes = 0
  let heldXid = 0
  let lastReadingAt = -Infinity
  let catalogReads = 0

  // Decoded messages waiting for `read`.
  let queue: DecodedMessage[] = []
  let queueFirstSeq = 1
  let wake: (() => void) | null = null
  let statusTimer: ReturnType<typeof setTimeout> | null = null

  /** Tells the server of a new flush LSN soon, once for all that moved it in the meantime. */
  function scheduleStatus() {
    statusTimer ??= setTimeout(() => {
      statusTimer = null
      stream?.sendStatus()
    }, ACK_STATUS_DELAY_MS)
  }

  function hand(message: DecodedMessage, bytes: number, confirmable: Lsn | null) {
    const seq = progress.track(bytes, confirmable)
    if (queue.length === 0) queueFirstSeq = seq
    queue.push(message)
    pauseIfFull()
    wake?.()
  }

  // What the consumer holds and what is held for a catalog reading share the pending limits.
  const waiting = () => ({ changes: held?.length ?? 0, bytes: heldBytes })

  function pauseIfFull() {
    if (!paused && stream && progress.full(waiting())) {
      paused = true
      stream.pause()
    }
  }

  function resumeIfRoomy() {
    if (paused && stream && progress.roomy(waiting())) {
      paused = false
      stream.resume()
    }
  }

  function onMessage(message: DecodedMessage, bytes: number) {
    switch (message.kind) {
      case 'begin':
        skipping = message.commitLsn <= skipThrough
        heldBegin = skipping ? null : message
        return
      case 'commit':
        if (skipping) {
          skipping = false
          return
        }
        skipThrough = maxLsn(skipThrough, message.commitLsn)
        if (heldBegin) {
          heldBegin = null
          if (progress.confirmAfterPending(message.commitLsn)) scheduleStatus()
        } else hand(message, bytes, message.commitLsn)
        return
      case 'message':
        if (message.transactional) break
        if (message.lsn <= skipThrough) return
        hand(message, bytes, message.lsn)
        return
    }
    if (skipping) return
    if (heldBegin) {
      hand(heldBegin, 0, null)
      heldBegin = null
    }
    hand(message, bytes, null)
  }

  function receive(xlog: XLogData, failSession: (error: unknown) => void) {
    if (held) {
      held.push(xlog)
      heldBytes += xlog.data.length
      pauseIfFull()
      return
    }
    const message = decodeWal2json(xlog.data, catalog.columns, xlog.dataStart, transactionCovered ? 'after' : 'before')
    if (message.kind === 'begin') {
      transactionXid = message.xid
      transactionCovered = catalog.covers(message.xid)
    } else if (message.kind === 'update' && message.columnsDiffer) {
      held = [xlog]
      heldBytes = xlog.data.length
      heldXid = transactionXid
      readColumnsAgain(failSession).catch(failSession)
      return
    }
    onMessage(message, xlog.data.length)
  }

  /**
   * Reads the catalog again and goes on from the first message held. It waits a turn at least (the messages of the
   * socket chunk at hand are held for this reading rather than ask for one more), and until MIN_READING_INTERVAL_MS
   * after the last reading. A transaction whose commit the server had written but not yet made visible (a matter
   * of microseconds) is not covered yet: its update is held again and read for again.
   */
  async function readColumnsAgain(failSession: (error: unknown) => void) {
    const reading = stream
    const wait = lastReadingAt + MIN_READING_INTERVAL_MS - performance.now()
    await (wait > 0 ? sleep(wait, halt.signal) : new Promise((resolve) => setImmediate(resolve)))
    lastReadingAt = performance.now()
    const read = await describeTables(querySql, options.schema, options.tables)
    catalogReads++
    if (stream !== reading) return // the session ended meanwhile; the next one replays these messages
    catalog = read
    const replay = held!
    held = null
    heldBytes = 0
    transactionXid = heldXid
    transactionCovered = catalog.covers(heldXid)
    for (const xlog of replay) receive(xlog, failSession)
    resumeIfRoomy()
  }

  async function session(attempt: number) {
    const replication = postgres({
      ...options.connection,
      max: 1,
      idle_timeout: 0,
      max_lifetime: 0,
      fetch_types: false,
      onnotice: () => {},
      connection: { ...options.connection.connection, replication: 'database', TimeZone: 'UTC', DateStyle: 'ISO' },
    })
    try {
      const identity = await identifySystem(replication)
      catalog = await describeTables(querySql, options.schema, options.tables)
      catalogReads++
      const senderTimeoutMs = await walSenderTimeoutMs(querySql)
      const statusIntervalMs =
        senderTimeoutMs > 0 ? Math.min(options.statusIntervalMs, Math.floor(senderTimeoutMs / STATUS_PER_SENDER_TIMEOUT)) : options.statusIntervalMs

      let existing = await readSlot(querySql, options.slot)
      let created: CreatedSlot | null = null
      if (existing) checkSlot(existing, identity.database)
      if (existing && !existing.active && !streamedOnce && options.acceptSlot && !(await options.acceptSlot(existing))) {
        log.warn(`replication slot ${options.slot} has no finished initial load recorded; dropping it to create it again and load`)
        await dropSlot(querySql, options.slot)
        existing = null
      }
      if (!existing && streamedOnce) throw new SlotError(`replication slot "${options.slot}" was dropped while in use: changes since ${formatLsn(progress.flushLsn)} are lost; restart to create it again and reload`)
      if (!existing) {
        await options.beforeCreateSlot?.()
        created = await createSlot(replication, options.slot)
        log.info(`created replication slot ${options.slot} at ${formatLsn(created.consistentPoint)}`)
        skipThrough = maxLsn(skipThrough, created.consistentPoint)
        await options.onSlotCreated?.(created, stopRequested)
      }

      heldBegin = null
      skipping = false
      held = null
      heldBytes = 0
      transactionCovered = false
      let failSession: (error: unknown) => void = () => {}
      const failed = new Promise<never>((_, reject) => (failSession = reject))
      failed.catch(() => {}) // a failure after the session ended concerns no one
      const startLsn = maxLsn(progress.flushLsn, existing?.confirmedFlushLsn ?? created?.consistentPoint ?? ZERO_LSN)
      stream = await startReplication(replication, {
        slot: options.slot,
        startLsn,
        pluginOptions: pluginOptions(options),
        statusIntervalMs,
        flushLsn: () => progress.flushLsn,
        onXLogData: (xlog) => receive(xlog, failSession),
        // A keepalive's position may be past messages held: nothing is confirmed until they are handed out.
        onKeepalive: (walEnd) => !held && progress.confirmAfterPending(walEnd) && scheduleStatus(),
      })
      streamedOnce = true
      generation++
      holder = null
      paused = false
      pauseIfFull()
      state = 'streaming'
      const tookOver = standbySince === null ? '' : ` (taken over after ${((Date.now() - standbySince) / 1000).toFixed(1)} s standing by)`
      standbySince = null
      log.info(`streaming from slot ${options.slot} at ${formatLsn(startLsn)}${attempt ? ` after ${attempt} retries` : ''}${tookOver}`)
      await Promise.race([stream.closed, failed])
    } finally {
      stream = null
      await replication.end({ timeout: 1 }).catch(() => {})
    }
  }

  async function run() {
    let attempt = 0
    while (!stopRequested()) {
      try {
        await session(attempt)
        attempt = 0
        if (stopRequested()) break
        log.warn(`replication stream from slot ${options.slot} ended by the server; reconnecting`)
      } catch (error) {
        if (stopRequested()) break
        if (!isRetryable(error)) throw error
        if ((error as { code?: string }).code === SLOT_IN_USE) {
          await standBy()
          continue
        }
        standbySince = null
        attempt++
        const delay = backoffDelay(attempt, reconnect.initialDelayMs, reconnect.maxDelayMs)
        log.warn(describeRetry(error) + `; retrying in ${Math.round(delay)} ms`)
        state = 'reconnecting'
        await sleep(delay, halt.signal)
        continue
      }
      state = 'reconnecting'
    }
  }

  /** Another process streams from the slot: say so once, name it, and try again shortly. */
  async function standBy() {
    holder = await slotHolder(querySql, options.slot).catch(() => holder)
    state = 'standby'
    if (standbySince === null) {
      standbySince = Date.now()
      log.info(`replication slot ${options.slot} is held by another process (${describeHolder(holder)}); standing by, trying every ${STANDBY_RETRY_MS / 1000} s`)
    }
    await sleep(STANDBY_RETRY_MS, halt.signal)
  }

  const running = run()
    .catch((error) => {
      failure = error instanceof Error ? error : new Error(String(error))
    })
    .finally(() => {
      state = 'stopped'
      wake?.()
    })

  return {
    /** The next messages; waits for at least one. Rejects when the source failed for good; [] once stopped. */
    async read(): Promise<Delivery> {
      while (queue.length === 0) {
        if (failure) throw failure
        if (state === 'stopped' || stopRequested()) return { firstSeq: queueFirstSeq, messages: [] }
        await new Promise<void>((resolve) => (wake = resolve))
        wake = null
      }
      const delivery = { firstSeq: queueFirstSeq, messages: queue }
      queueFirstSeq += queue.length
      queue = []
      return delivery
    },

    /** Everything handed out up to and including `seq` is durable: the slot may confirm its commits. */
    acknowledge(seq: number) {
      const moved = progress.acknowledge(seq)
      resumeIfRoomy()
      if (moved) scheduleStatus()
    },

    async stop() {
      halt.abort()
      state = 'stopping'
      if (statusTimer) clearTimeout(statusTimer)
      await stream?.end()
      wake?.()
      await running
      await querySql.end({ timeout: 1 }).catch(() => {})
    },

    get state() {
      return state
    },
    /** Who holds the slot while this source stands by; null otherwise. */
    get holder() {
      return state === 'standby' ? holder : null
    },
    /** The number of streams started: it changes on every (re)connection. */
    get generation() {
      return generation
    },
    get confirmedLsn() {
      return progress.flushLsn
    },
    get receivedLsn() {
      return stream?.receivedLsn ?? progress.flushLsn
    },
    /** Reading from the socket is paused: the consumer, with what waits for a catalog reading, holds as much as it may. */
    get readingPaused() {
      return paused
    },
    get pendingChanges() {
      return progress.pendingChanges
    },
    get pendingBytes() {
      return progress.pendingBytes
    },
    /** Catalog readings so far: one per session, and one per change no reading had covered yet. */
    get catalogReads() {
      return catalogReads
    },
    /** A normal (non-replication) connection to the source database, for catalog and status queries. */
    sql: querySql,
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

function isRetryable(error: unknown): boolean {
  if (error instanceof SlotError) return false
  const { code } = (error ?? {}) as { code?: string }
  if (!code) return false
  if (RETRYABLE_SQLSTATES.has(code) || code.startsWith('08')) return true
  return /^(ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|CONNECTION_|CONNECT_TIMEOUT)/.test(code)
}

function describeRetry(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string }
  return `replication connection failed: ${message ?? String(error)}${code ? ` (${code})` : ''}`
}

async function slotHolder(sql: postgres.Sql, slot: string): Promise<SlotHolder | null> {
  const [row] = await sql`
    select s.active_pid as pid, r.client_addr::text as address, r.application_name
    from pg_replication_slots s left join pg_stat_replication r on r.pid = s.active_pid
    where s.slot_name = ${slot} and s.active_pid is not null`
  return row ? { pid: row.pid, clientAddress: row.address, applicationName: row.application_name } : null
}

function describeHolder(holder: SlotHolder | null): string {
  if (!holder) return 'its pid already gone'
  return [`walsender pid ${holder.pid}`, holder.clientAddress && `client ${holder.clientAddress}`, holder.applicationName && `application ${holder.applicationName}`]
    .filter(Boolean)
    .join(', ')
}
