// The supervisor of the source's connections: one attempt after another until the process stops, with backoff
// after a failure that a later attempt may get past, and a standby while another process holds the slot.
// Guarantees: a slot another process streams from, creates or loads is waited for, never taken; a failure for good
// (a refused slot, a slot dropped under us, an SQL error) ends it and is kept for the consumer; a stop ends a
// backoff or a standby wait at once; `generation` counts the streams started, so a consumer that sees it change
// knows the slot may have been streamed by another process in between.

import type postgres from 'postgres'
import type { Logger } from '../log.ts'
import { type Lsn, formatLsn } from './lsn.ts'
import { backoffDelay, sleep } from '../retry.ts'
import { SlotBusy, SlotError } from './slot.ts'

export type SourceState = 'starting' | 'streaming' | 'reconnecting' | 'standby' | 'stopping' | 'stopped'

/** The process that streams from the slot while this one stands by, as PostgreSQL sees it. */
export type SlotHolder = { pid: number; clientAddress: string | null; applicationName: string | null }

// While another process holds the slot: a short, fixed wait between attempts, so that a standby takes over
// within about this long once the slot is released (at once on the holder's crash: PostgreSQL ends its
// walsender when the connection drops; after a network cut, once wal_sender_timeout ends it). One attempt opens a
// replication connection and runs a few queries (see `connect`), and each wait one more, for the holder's name.
const STANDBY_RETRY_MS = 1_000
const SLOT_IN_USE = '55006'

// SQLSTATEs after which a later attempt may succeed.
const RETRYABLE_SQLSTATES = new Set([
  SLOT_IN_USE, // object_in_use: another process streams from the slot
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: the server is starting up or shutting down
  '53300', // too_many_connections
  '40001', // serialization_failure
])

export type SupervisorOptions = {
  slot: string
  reconnect: { initialDelayMs: number; maxDelayMs: number }
  /** The process stops. */
  signal: AbortSignal
  /**
   * One attempt: connects, opens the slot and streams; `streaming` is called once the stream is up. Resolves when the
   * server ends the stream.
   */
  connect(streaming: (startLsn: Lsn) => void): Promise<void>
  /** A normal connection, to name who holds the slot. */
  sql: postgres.Sql
  log: Logger
}

export type Supervisor = ReturnType<typeof superviseSource>

export function superviseSource(options: SupervisorOptions) {
  const { log, slot, signal } = options
  let state: SourceState = 'starting'
  let holder: SlotHolder | null = null
  let standbySince: number | null = null
  let generation = 0
  let failure: Error | null = null

  function streaming(attempt: number, startLsn: Lsn) {
    generation++
    holder = null
    state = 'streaming'
    const tookOver = standbySince === null ? '' : ` (taken over after ${((Date.now() - standbySince) / 1000).toFixed(1)} s standing by)`
    standbySince = null
    log.info(`streaming from slot ${slot} at ${formatLsn(startLsn)}${attempt ? ` after ${attempt} retries` : ''}${tookOver}`)
  }

  async function run() {
    let attempt = 0
    while (!signal.aborted) {
      try {
        await options.connect((startLsn) => streaming(attempt, startLsn))
        attempt = 0
        if (signal.aborted) break
        log.warn(`replication stream from slot ${slot} ended by the server; reconnecting`)
      } catch (error) {
        if (signal.aborted) break
        if (!isRetryable(error)) throw error
        if (error instanceof SlotBusy || (error as { code?: string }).code === SLOT_IN_USE) {
          await standBy(error)
          continue
        }
        standbySince = null
        attempt++
        const delay = backoffDelay(attempt, options.reconnect.initialDelayMs, options.reconnect.maxDelayMs)
        log.warn(describeRetry(error) + `; retrying in ${Math.round(delay)} ms`)
        state = 'reconnecting'
        await sleep(delay, signal)
        continue
      }
      state = 'reconnecting'
    }
  }

  /** Another process streams from the slot, or creates or loads it: say so once, name it, and try again shortly. */
  async function standBy(error: unknown) {
    const busy = error instanceof SlotBusy
    holder = busy ? null : await slotHolder(options.sql, slot).catch(() => holder)
    state = 'standby'
    if (standbySince === null) {
      standbySince = Date.now()
      const why = busy ? (error as SlotBusy).message : `replication slot ${slot} is held by another process (${describeHolder(holder)})`
      log.info(`${why}; standing by, trying every ${STANDBY_RETRY_MS / 1000} s`)
    }
    await sleep(STANDBY_RETRY_MS, signal)
  }

  const running = run()
    .catch((error) => {
      failure = error instanceof Error ? error : new Error(String(error))
    })
    .finally(() => {
      state = 'stopped'
    })

  return {
    /** Settles once the supervisor is done: stopped, or failed for good (see `failure`). */
    running,
    /** A stop was asked: say so until the last attempt ended. */
    stopping() {
      if (state !== 'stopped') state = 'stopping'
    },
    get failure() {
      return failure
    },
    get state() {
      return state
    },
    /** Who holds the slot while this source stands by; null otherwise. */
    get holder() {
      return state === 'standby' ? holder : null
    },
    get generation() {
      return generation
    },
  }
}

function isRetryable(error: unknown): boolean {
  if (error instanceof SlotBusy) return true
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
