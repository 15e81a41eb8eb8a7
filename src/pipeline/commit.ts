// Commit: batches delivered side by side, checkpointed and acknowledged to the source strictly in order.
// Guarantees:
// - a batch's checkpoint (the commit LSN it completes, in MongoDB) and its acknowledgement wait for its own
//   delivery and for every earlier batch's commit, so the slot never moves past an event that is not
//   durable and published;
// - `settled` and then `onDurable` hear of each committed batch once, in order;
// - at most `maxInFlight` batches are outstanding: `waitForSlot` holds the reader until one commits.

import type { TaskEvent } from '../events/events.ts'
import type { Lsn } from '../replication/lsn.ts'
import type { Source } from '../replication/source.ts'
import { unlessStopped } from '../retry.ts'
import type { Batch } from './build.ts'

export type CommitOptions = {
  source: Pick<Source, 'acknowledge'>
  /** Records the commit LSN a batch completes, retried until it succeeds. */
  checkpoint(lsn: Lsn): Promise<void>
  maxInFlight: number
  /** The batch is acknowledged: what was pinned for it may go. */
  settled(batch: Batch): void
  onDurable?(events: TaskEvent[]): void
  signal: AbortSignal
}

export type Commit = ReturnType<typeof createCommit>

export function createCommit(options: CommitOptions) {
  const { source, signal } = options
  // The last batch's commit: the next one's waits for it.
  let tail: Promise<void> = Promise.resolve()
  let inFlight = 0
  let slotFreed: (() => void) | null = null

  return {
    /** Resolves once fewer than `maxInFlight` batches are outstanding; StopRequested if the stop comes first. */
    async waitForSlot() {
      while (inFlight >= options.maxInFlight) await unlessStopped(new Promise<void>((resolve) => (slotFreed = resolve)), signal, 'stopping with every batch slot taken')
      slotFreed = null
    },

    /** Commits the batch once `delivered` resolves and every batch added before it is committed. */
    add(batch: Batch, delivered: Promise<void>) {
      inFlight++
      const previous = tail
      tail = (async () => {
        await Promise.all([delivered, previous])
        if (batch.commitLsn !== null) await options.checkpoint(batch.commitLsn)
        source.acknowledge(batch.lastSeq)
        options.settled(batch)
        inFlight--
        slotFreed?.()
        options.onDurable?.(batch.events)
      })()
      // Observed by the next batch or by `committed`; until then a stop's give-up is not an unhandled rejection.
      tail.catch(() => {})
    },

    /** Resolves when every batch added so far is committed; rejects if one was given up. */
    committed: () => tail,

    get inFlight() {
      return inFlight
    },
  }
}
