// The runs' records in `snapshots` (contract section 4). Guarantees: a run's record says `running` from its
// start, with `heartbeatAt` renewed every HEARTBEAT_INTERVAL_MS until it ends; a `running` record whose
// heartbeat is older than STALE_AFTER_MS belongs to a process that is gone (killed, crashed) and is set
// `failed` with `error: "interrupted"` by `sweepInterrupted`; a live run, of this instance or another, keeps
// its heartbeat fresh and is never touched.

import type { Collection, Db } from 'mongodb'
import { COLLECTIONS } from '../sinks/mongo.ts'

// The contract's figures: three missed heartbeats make a run gone, so one slow write of MongoDB or a
// clock a few seconds off another instance's never does.
export const HEARTBEAT_INTERVAL_MS = 10_000
export const STALE_AFTER_MS = 30_000
export const INTERRUPTED = 'interrupted'

type SnapshotRecord = { _id: string } & Record<string, unknown>

export type RunRecord = {
  /** Ends the heartbeat and writes the run's last state. */
  finish(fields: Record<string, unknown>): Promise<void>
}

export function snapshotRecords(db: Db) {
  const records: Collection<SnapshotRecord> = db.collection<SnapshotRecord>(COLLECTIONS.snapshots)

  return {
    /** Sets every `running` record whose heartbeat is stale `failed` (interrupted); returns how many. */
    async sweepInterrupted(now = new Date()): Promise<number> {
      const { modifiedCount } = await records.updateMany(
        { outcome: 'running', heartbeatAt: { $lt: new Date(now.getTime() - STALE_AFTER_MS) } },
        { $set: { outcome: 'failed', error: INTERRUPTED, finishedAt: now } },
      )
      return modifiedCount
    },

    /** Writes the run's `running` record and keeps its heartbeat until `finish`. */
    async begin(snapshotId: string, startedAt: Date, fields: Record<string, unknown>): Promise<RunRecord> {
      await records.insertOne({ _id: snapshotId, startedAt, finishedAt: null, outcome: 'running', heartbeatAt: startedAt, ...fields })
      let beating: Promise<unknown> | null = null
      const timer = setInterval(() => {
        // One write at a time: against a hung server, beats would pile up. Only a record still `running` is
        // renewed, so a run another instance gave up on stays given up.
        beating ??= records
          .updateOne({ _id: snapshotId, outcome: 'running' }, { $set: { heartbeatAt: new Date() } })
          .catch(() => {})
          .finally(() => (beating = null))
      }, HEARTBEAT_INTERVAL_MS)
      return {
        async finish(last) {
          clearInterval(timer)
          await records.updateOne({ _id: snapshotId }, { $set: last })
        },
      }
    },
  }
}
