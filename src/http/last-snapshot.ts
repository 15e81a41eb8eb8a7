// `lastSnapshot` in /info (contract section 5): the newest start-job run recorded in `snapshots`, its
// outcome, when it finished, and the drift it counted (never its example task ids). Guarantees: MongoDB is
// read at most once every LAST_SNAPSHOT_MAX_AGE_MS, and only when /info is asked (an idle connector that
// nobody looks at reads nothing); /info never waits on a slow or frozen MongoDB longer than
// LAST_SNAPSHOT_WAIT_MS: it answers with the value read last.

import type { Db } from 'mongodb'
import { withDeadline } from '../retry.ts'
import { COLLECTIONS } from '../sinks/mongo.ts'

// A start-job runs daily or so: a value half a minute old is fresh enough, and a page polling /info every
// 5 s costs MongoDB one query in six.
export const LAST_SNAPSHOT_MAX_AGE_MS = 30_000
// Within a page's poll; a MongoDB that takes longer is failing, and readiness says so.
const LAST_SNAPSHOT_WAIT_MS = 1_000

export type LastSnapshot = {
  snapshotId: string
  outcome: string
  startedAt: string | null
  finishedAt: string | null
  drift: { missing: number; extra: number; stale: number } | null
}

type SnapshotRecord = { _id: string; outcome?: string; startedAt?: Date | null; finishedAt?: Date | null; drift?: { missing?: number; extra?: number; stale?: number } | null }

export function createLastSnapshot(db: Db, now = Date.now) {
  const records = db.collection<SnapshotRecord>(COLLECTIONS.snapshots)
  let value: LastSnapshot | null = null
  let readAt = -Infinity
  let reading: Promise<void> | null = null

  async function readNewest() {
    const [record] = await records.find().sort({ startedAt: -1 }).limit(1).toArray()
    value = record ? summary(record) : null
  }

  return async function lastSnapshot(): Promise<LastSnapshot | null> {
    if (!reading && now() - readAt >= LAST_SNAPSHOT_MAX_AGE_MS) {
      readAt = now()
      reading = readNewest()
        .catch(() => {})
        .finally(() => (reading = null))
    }
    if (reading) await withDeadline(reading, LAST_SNAPSHOT_WAIT_MS).catch(() => {})
    return value
  }
}

function summary(record: SnapshotRecord): LastSnapshot {
  const iso = (date: Date | null | undefined) => (date instanceof Date ? date.toISOString() : null)
  const drift = record.drift
  return {
    snapshotId: record._id,
    outcome: record.outcome ?? 'unknown',
    startedAt: iso(record.startedAt),
    finishedAt: iso(record.finishedAt),
    drift: drift ? { missing: drift.missing ?? 0, extra: drift.extra ?? 0, stale: drift.stale ?? 0 } : null,
  }
}
