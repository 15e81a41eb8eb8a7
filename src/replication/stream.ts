// One START_REPLICATION session over a postgres.js replication connection: the CopyBoth sub-protocol.
// Owns the socket's flow (pause/resume), answers primary keepalives that ask for a reply at once, and
// sends standby status updates on its own timer, whatever the consumer's pace, so that a slow consumer
// is never cut off by wal_sender_timeout.

import type { Duplex } from 'node:stream'
import type postgres from 'postgres'
import { type Lsn, formatLsn, maxLsn } from './lsn.ts'
import {
  PRIMARY_KEEPALIVE,
  XLOG_DATA,
  type XLogData,
  parsePrimaryKeepalive,
  parseXLogData,
  standbyStatusUpdate,
} from './messages.ts'
import { quoteIdentifier, quoteLiteral } from './slot.ts'

export type StreamOptions = {
  slot: string
  startLsn: Lsn
  pluginOptions: [string, string][]
  statusIntervalMs: number
  /** The LSN the consumer's acknowledgements allow to confirm; read at every status update. */
  flushLsn(): Lsn
  onXLogData(message: XLogData): void
  onKeepalive(walEnd: Lsn): void
}

export type ReplicationStream = {
  pause(): void
  resume(): void
  /** Sends a standby status update now. */
  sendStatus(): void
  /** Final status update, CopyDone, and the end of the session. */
  end(): Promise<void>
  /** Settles when the session is over: resolves on a clean end, rejects with the cause otherwise. */
  closed: Promise<void>
  readonly receivedLsn: Lsn
}

export function startReplicationCommand(slot: string, startLsn: Lsn, pluginOptions: [string, string][]): string {
  const options = pluginOptions.map(([name, value]) => `${quoteIdentifier(name)} ${quoteLiteral(value)}`).join(', ')
  return `START_REPLICATION SLOT ${quoteIdentifier(slot)} LOGICAL ${formatLsn(startLsn)} (${options})`
}

export async function startReplication(replication: postgres.Sql, options: StreamOptions): Promise<ReplicationStream> {
  // postgres.js answers CopyBothResponse with a Duplex, though its types name the Writable side only.
  const duplex = (await replication.unsafe(startReplicationCommand(options.slot, options.startLsn, options.pluginOptions)).writable()) as Duplex

  let received = options.startLsn
  let ended = false
  let timer: ReturnType<typeof setInterval> | undefined

  const sendStatus = () => {
    if (ended || duplex.destroyed) return
    const flush = options.flushLsn()
    duplex.write(standbyStatusUpdate({ write: maxLsn(received, flush), flush, apply: flush }))
  }

  const closed = new Promise<void>((resolve, reject) => {
    duplex.on('data', (message: Buffer) => {
      // After our CopyDone the server may still finish the transaction it is sending: read it, drop it.
      if (ended) return
      if (message[0] === XLOG_DATA) {
        const xlog = parseXLogData(message)
        received = maxLsn(received, xlog.walEnd)
        options.onXLogData(xlog)
      } else if (message[0] === PRIMARY_KEEPALIVE) {
        const keepalive = parsePrimaryKeepalive(message)
        received = maxLsn(received, keepalive.walEnd)
        options.onKeepalive(keepalive.walEnd)
        if (keepalive.replyRequested) sendStatus()
      }
    })
    duplex.on('error', (error) => {
      ended = true
      reject(error)
    })
    duplex.on('close', () => {
      ended = true
      clearInterval(timer)
      resolve()
    })
  })
  closed.catch(() => clearInterval(timer))

  timer = setInterval(sendStatus, options.statusIntervalMs)
  sendStatus()

  return {
    pause: () => ended || duplex.pause(),
    resume: () => duplex.resume(),
    sendStatus,
    async end() {
      if (!ended) {
        sendStatus()
        ended = true
        duplex.end()
        duplex.resume()
      }
      await closed.catch(() => {})
    },
    closed,
    get receivedLsn() {
      return received
    },
  }
}
