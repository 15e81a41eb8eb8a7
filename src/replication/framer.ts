// Transaction framing of the decoded messages of one session: pure, no I/O.
// Guarantees: a transaction is handed out framed by its begin and commit, the begin held back until its first
// change, so an empty one (touching only untracked tables) is never handed out and its commit is only confirmed
// after what is pending; a transaction whose commit is at or below `skipThrough` (the resume point, or handed out
// whole already) is skipped, as is a non-transactional message at or below it.

import type { Begin, DecodedMessage } from '../decode/types.ts'
import { type Lsn, maxLsn } from './lsn.ts'

export type FramerOutput = {
  /** Hands a message to the consumer; `confirmable` is the LSN its acknowledgement confirms, if any. */
  hand(message: DecodedMessage, bytes: number, confirmable: Lsn | null): void
  /** A position safe to confirm once everything handed out so far is acknowledged. */
  confirmAfterPending(lsn: Lsn): void
}

export type Framer = ReturnType<typeof createFramer>

/** A framer for one session; `skipThrough` carries over from the last (what it handed out whole stays skipped). */
export function createFramer(skipThrough: Lsn, out: FramerOutput) {
  let heldBegin: Begin | null = null
  let skipping = false

  function frame(message: DecodedMessage, bytes: number) {
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
          out.confirmAfterPending(message.commitLsn)
        } else out.hand(message, bytes, message.commitLsn)
        return
      case 'message':
        if (message.transactional) break
        if (message.lsn <= skipThrough) return
        out.hand(message, bytes, message.lsn)
        return
    }
    if (skipping) return
    if (heldBegin) {
      out.hand(heldBegin, 0, null)
      heldBegin = null
    }
    out.hand(message, bytes, null)
  }

  return {
    frame,
    /** Commits at or below this are skipped: the resume point, or the last commit handed out whole. */
    get skipThrough() {
      return skipThrough
    },
  }
}
