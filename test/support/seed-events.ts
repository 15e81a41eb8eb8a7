// Histories for the Stream's tests, written straight into `task_events` as the MongoDB sink stores events
// (insertMany in large batches: the stream itself would take minutes to write as many).

import type { Db } from 'mongodb'

const INSERT_BATCH = 10_000
const WORKSPACE_ID = '00000000-0000-4000-8000-000000000001'

/** An id of commit LSN `lsn` (below any the connector gives for a small one) and ordinal `n`. */
export const seededId = (lsn: number, n: number) => `${lsn.toString(16).toUpperCase().padStart(16, '0')}-${n.toString(16).toUpperCase().padStart(8, '0')}`

/** Stores `count` events with ids seededId(lsn, 0…count-1), each of `type(n)`, with `description` in its data. */
export async function seedEvents(db: Db, { lsn, count, type, description }: { lsn: number; count: number; type: (n: number) => string; description: string }) {
  for (let from = 0; from < count; from += INSERT_BATCH) {
    const documents = Array.from({ length: Math.min(INSERT_BATCH, count - from) }, (_, i) => {
      const taskId = crypto.randomUUID()
      const eventType = type(from + i)
      return {
        _id: seededId(lsn, from + i), type: eventType, source: 'cdc', workspaceId: WORKSPACE_ID, taskId: eventType.startsWith('task.') ? taskId : null,
        lsn: `0/${lsn.toString(16).toUpperCase()}`, xid: 1, commitTime: new Date(), data: { id: taskId, workspaceId: WORKSPACE_ID, title: 'seeded', description }, previous: null,
      }
    })
    await db.collection('task_events').insertMany(documents as any[], { ordered: false })
  }
}
