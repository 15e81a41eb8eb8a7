// What the consumer holds, and how far the slot may be confirmed.
// Guarantees: the flush LSN never passes a change the consumer has not acknowledged; it only moves forward;
// when nothing is held, it follows the server's WAL position so an idle slot never retains WAL.

import { type Lsn, maxLsn } from './lsn.ts'

export type ProgressLimits = { maxPendingChanges: number; maxPendingBytes: number }
/** Received and not handed out yet (waiting for a catalog reading): it counts against the same limits. */
export type Waiting = { changes: number; bytes: number }
const NOTHING_WAITING: Waiting = { changes: 0, bytes: 0 }

export type Progress = ReturnType<typeof createProgress>

export function createProgress(limits: ProgressLimits, flushedLsn: Lsn) {
  // Pending entries, oldest first, from index `head` on; sequence numbers are consecutive from `headSeq`.
  let cumulativeBytes: number[] = []
  let confirmableAt: (Lsn | null)[] = []
  let head = 0
  let headSeq = 1
  let trackedBytes = 0
  let acknowledgedBytes = 0
  let flush = flushedLsn

  const pendingChanges = () => cumulativeBytes.length - head

  return {
    /** Records a message handed to the consumer; `confirmable` is the LSN its acknowledgement confirms, if any. */
    track(bytes: number, confirmable: Lsn | null): number {
      trackedBytes += bytes
      cumulativeBytes.push(trackedBytes)
      confirmableAt.push(confirmable)
      return headSeq + pendingChanges() - 1
    },

    /**
     * A position that is safe to confirm once everything handed out so far is acknowledged:
     * a primary keepalive's WAL end, or the commit of a transaction with no tracked change.
     * Returns true when the flush LSN moved at once.
     */
    confirmAfterPending(lsn: Lsn): boolean {
      if (pendingChanges() > 0) {
        const tail = confirmableAt.length - 1
        confirmableAt[tail] = maxLsn(confirmableAt[tail] ?? 0n, lsn)
        return false
      }
      const before = flush
      flush = maxLsn(flush, lsn)
      return flush !== before
    },

    /** Acknowledges every message up to and including `seq`. Returns true when the flush LSN moved. */
    acknowledge(seq: number): boolean {
      const before = flush
      const last = Math.min(seq - headSeq, pendingChanges() - 1)
      if (last < 0) return false
      for (let i = head; i <= head + last; i++) {
        const lsn = confirmableAt[i]
        if (lsn != null) flush = maxLsn(flush, lsn)
      }
      acknowledgedBytes = cumulativeBytes[head + last]!
      head += last + 1
      headSeq += last + 1
      if (head > 4096 && head * 2 > cumulativeBytes.length) {
        cumulativeBytes = cumulativeBytes.slice(head)
        confirmableAt = confirmableAt.slice(head)
        head = 0
      }
      return flush !== before
    },

    get flushLsn() {
      return flush
    },
    get pendingChanges() {
      return pendingChanges()
    },
    get pendingBytes() {
      return trackedBytes - acknowledgedBytes
    },
    /** The consumer holds, with what `waiting` to be handed out, as much as it may: stop reading the socket. */
    full(waiting: Waiting = NOTHING_WAITING) {
      return (
        pendingChanges() + waiting.changes >= limits.maxPendingChanges ||
        trackedBytes - acknowledgedBytes + waiting.bytes >= limits.maxPendingBytes
      )
    },
    /** Below half the limits, `waiting` counted: reading may resume without flapping. */
    roomy(waiting: Waiting = NOTHING_WAITING) {
      return (
        pendingChanges() + waiting.changes <= limits.maxPendingChanges / 2 &&
        trackedBytes - acknowledgedBytes + waiting.bytes <= limits.maxPendingBytes / 2
      )
    },
  }
}
