// One START_REPLICATION session: the stream, its catalog gate and transaction framer, whether the socket is read,
// and how the session failed. Everything here dies with the session, so nothing stale (a held message, a reading
// under way, a half-framed transaction) reaches the next one, which receives from the confirmed position again.
// Guarantees: the socket is not read while the consumer holds, with what the gate holds, the pending limits;
// a keepalive's position is confirmed only when nothing is held for a reading.

import type postgres from 'postgres'
import type { DecodedMessage } from '../decode/types.ts'
import { createCatalogGate } from './catalog-gate.ts'
import { createFramer } from './framer.ts'
import type { Lsn } from './lsn.ts'
import type { Progress } from './progress.ts'
import { type ReplicationStream, startReplication } from './stream.ts'
import type { CatalogReading } from './tables.ts'

export type SessionOptions = {
  replication: postgres.Sql
  slot: string
  startLsn: Lsn
  pluginOptions: [string, string][]
  statusIntervalMs: number
  /** Commits at or below this are skipped. */
  skipThrough: Lsn
  reading: CatalogReading
  readCatalog(): Promise<CatalogReading>
  progress: Progress
  /** The process stops: a pacing wait ends at once. */
  signal: AbortSignal
  /** Hands a message to the consumer (after `progress.track`). */
  hand(message: DecodedMessage, bytes: number, confirmable: Lsn | null): void
  /** The flush LSN moved: tell the server soon. */
  scheduleStatus(): void
  /**
   * The stream is up: called before anything of it is handed out (in the same turn as START_REPLICATION's answer),
   * so that a consumer never reads this session's messages under the last session's generation.
   */
  started(): void
}

export type Session = Awaited<ReturnType<typeof startSession>>

export async function startSession(options: SessionOptions) {
  const { progress } = options
  let stream: ReplicationStream | null = null
  let paused = false
  let fail: (error: unknown) => void = () => {}
  const failed = new Promise<never>((_, reject) => (fail = reject))
  failed.catch(() => {}) // a failure after the session ended concerns no one

  function pauseIfFull() {
    if (!paused && stream && progress.full(gate.waiting())) {
      paused = true
      stream.pause()
    }
  }

  function resumeIfRoomy() {
    if (paused && stream && progress.roomy(gate.waiting())) {
      paused = false
      stream.resume()
    }
  }

  const framer = createFramer(options.skipThrough, {
    hand(message, bytes, confirmable) {
      options.hand(message, bytes, confirmable)
      pauseIfFull()
    },
    confirmAfterPending: (lsn) => progress.confirmAfterPending(lsn) && options.scheduleStatus(),
  })
  const gate = createCatalogGate({
    reading: options.reading,
    readCatalog: options.readCatalog,
    signal: options.signal,
    decoded: framer.frame,
    held: pauseIfFull,
    released: resumeIfRoomy,
    fail,
  })

  stream = await startReplication(options.replication, {
    slot: options.slot,
    startLsn: options.startLsn,
    pluginOptions: options.pluginOptions,
    statusIntervalMs: options.statusIntervalMs,
    flushLsn: () => progress.flushLsn,
    onXLogData: gate.receive,
    // A keepalive's position may be past messages held: nothing is confirmed until they are handed out.
    onKeepalive: (walEnd) => !gate.holding && progress.confirmAfterPending(walEnd) && options.scheduleStatus(),
  })
  options.started()
  pauseIfFull()
  const live = stream

  return {
    /** Settles when the session is over: resolves when the server ended the stream, rejects with the cause otherwise. */
    closed: Promise.race([live.closed, failed]).finally(gate.close),
    /** The consumer acknowledged: reading may resume. */
    acknowledged: resumeIfRoomy,
    sendStatus: live.sendStatus,
    end: live.end,
    get paused() {
      return paused
    },
    get receivedLsn() {
      return live.receivedLsn
    },
    /** What the next session skips: the resume point, or the last commit this one handed out whole. */
    get skipThrough() {
      return framer.skipThrough
    },
  }
}
