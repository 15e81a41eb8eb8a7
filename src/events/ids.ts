// Event ids: `<16 hex digits>-<8 hex digits>`, upper case, so that sorting ids as strings sorts by
// commit LSN (or snapshot time) and then by the change's ordinal. A replay produces the same ids.

import { type Lsn, lsnToHex16 } from '../replication/lsn.ts'

const ORDINAL_DIGITS = 8
const PREFIX_DIGITS = 16

export function eventId(commitLsn: Lsn, ordinal: number): string {
  return `${lsnToHex16(commitLsn)}-${ordinal.toString(16).toUpperCase().padStart(ORDINAL_DIGITS, '0')}`
}

/** A start-job run's id: its start time as Unix microseconds. */
export function snapshotId(startedAt: Date): string {
  return (BigInt(startedAt.getTime()) * 1000n).toString(16).toUpperCase().padStart(PREFIX_DIGITS, '0')
}

export function snapshotEventId(runId: string, ordinal: number): string {
  return `${runId}-${ordinal.toString(16).toUpperCase().padStart(ORDINAL_DIGITS, '0')}`
}

/** The smallest and largest ids of a commit LSN: bounds for range queries over `task_events`. */
export function eventIdRange(commitLsn: Lsn): { first: string; last: string } {
  return { first: eventId(commitLsn, 0), last: eventId(commitLsn, 0xffffffff) }
}
