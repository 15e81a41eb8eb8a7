// The messages of PostgreSQL's streaming-replication sub-protocol, carried inside CopyData
// (protocol-replication.html, "START_REPLICATION"). Parsing is plain Buffer reads at named offsets.

import type { Lsn } from './lsn.ts'

// First byte of each CopyData payload.
export const XLOG_DATA = 0x77 /* 'w' */
export const PRIMARY_KEEPALIVE = 0x6b /* 'k' */
export const STANDBY_STATUS_UPDATE = 0x72 /* 'r' */

// XLogData: Byte1('w') Int64 dataStart, Int64 walEnd, Int64 sendTime, Byten data.
const XLOG_DATA_START = 1
const XLOG_WAL_END = 9
export const XLOG_DATA_HEADER = 25

// Primary keepalive message: Byte1('k') Int64 walEnd, Int64 sendTime, Byte1 replyRequested.
const KEEPALIVE_WAL_END = 1
const KEEPALIVE_REPLY_REQUESTED = 17
const KEEPALIVE_LENGTH = 18

// Standby status update: Byte1('r') Int64 write, Int64 flush, Int64 apply, Int64 sendTime, Byte1 replyRequested.
const STATUS_WRITE = 1
const STATUS_FLUSH = 9
const STATUS_APPLY = 17
const STATUS_SEND_TIME = 25
const STATUS_REPLY_REQUESTED = 33
const STATUS_LENGTH = 34

// Protocol timestamps count microseconds since 2000-01-01 00:00 UTC.
const POSTGRES_EPOCH_MS = Date.UTC(2000, 0, 1)
const MICROS_PER_MS = 1000n

export type XLogData = { dataStart: Lsn; walEnd: Lsn; data: Buffer }
export type PrimaryKeepalive = { walEnd: Lsn; replyRequested: boolean }

export function parseXLogData(message: Buffer): XLogData {
  return {
    dataStart: message.readBigUInt64BE(XLOG_DATA_START),
    walEnd: message.readBigUInt64BE(XLOG_WAL_END),
    data: message.subarray(XLOG_DATA_HEADER),
  }
}

export function parsePrimaryKeepalive(message: Buffer): PrimaryKeepalive {
  if (message.length < KEEPALIVE_LENGTH) throw new Error(`short primary keepalive message (${message.length} bytes)`)
  return {
    walEnd: message.readBigUInt64BE(KEEPALIVE_WAL_END),
    replyRequested: message[KEEPALIVE_REPLY_REQUESTED] === 1,
  }
}

export type StandbyStatus = { write: Lsn; flush: Lsn; apply: Lsn }

export function standbyStatusUpdate({ write, flush, apply }: StandbyStatus, now = Date.now()): Buffer {
  const message = Buffer.alloc(STATUS_LENGTH)
  message[0] = STANDBY_STATUS_UPDATE
  message.writeBigUInt64BE(write, STATUS_WRITE)
  message.writeBigUInt64BE(flush, STATUS_FLUSH)
  message.writeBigUInt64BE(apply, STATUS_APPLY)
  message.writeBigInt64BE(BigInt(now - POSTGRES_EPOCH_MS) * MICROS_PER_MS, STATUS_SEND_TIME)
  message[STATUS_REPLY_REQUESTED] = 0
  return message
}
