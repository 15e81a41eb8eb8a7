// The HTTP API's reads of the MongoDB state (contract section 4): the history in `task_events` for the
// Stream, the current rows for the Snapshot, the checkpoint that bounds both. Read only; every read is a
// cursor in `_id` order (or the collection's natural order for rows), so memory does not grow with the
// size of what is read.

import type { Db, Document, FindCursor } from 'mongodb'
import { eventIdRange } from '../events/ids.ts'
import type { EventType, TaskEvent } from '../events/events.ts'
import { withDeadline } from '../retry.ts'
import { parseLsn } from '../replication/lsn.ts'
import { COLLECTIONS, eventFromDocument, fromDocument } from '../sinks/mongo.ts'

export type EventFilter = { workspace?: string; types?: EventType[] }

/** The checkpoint: its LSN, and the greatest event id it covers (every event at or below it is durable and published). */
export type DurablePoint = { lsn: string; lastEventId: string }

/** MongoDB did not answer a request's first read in time: the request is answered 503, not left hanging. */
export class StoreUnavailable extends Error {}

// A request's first read: past this the client is told 503 rather than kept waiting (the driver itself would
// wait for its server selection, 30 s, and a Stream would answer 200 and then be cut).
const FIRST_READ_DEADLINE_MS = 5_000
// Documents per round trip of a cursor: large enough that a catch-up is not a round trip per event, small
// enough that a page of large events stays a few MB.
const CURSOR_BATCH = 500

export type ApiStore = ReturnType<typeof createApiStore>

export function createApiStore(db: Db, slot: string) {
  const collection = (name: string) => db.collection<Document & { _id: string }>(name)

  async function durablePoint(): Promise<DurablePoint | null> {
    const checkpoint = await collection(COLLECTIONS.checkpoints).findOne({ _id: slot })
    return checkpoint?.lsn ? { lsn: checkpoint.lsn, lastEventId: eventIdRange(parseLsn(checkpoint.lsn)).last } : null
  }

  return {

    /**
     * The checkpoint as a resume point for the Stream: its LSN, and the greatest event id it covers
     * (`<commit LSN>-FFFFFFFF`). Not necessarily a stored event's id, but as good for `since`, and read
     * in one lookup where finding the last stored event of a large commit took FerretDB seconds.
     */
    durablePoint,

    /** The same as a request's first read: StoreUnavailable unless MongoDB answers within seconds. */
    async firstDurablePoint(): Promise<DurablePoint | null> {
      let point: DurablePoint | null = null
      try {
        await withDeadline(durablePoint().then((read) => void (point = read)), FIRST_READ_DEADLINE_MS)
      } catch (error) {
        throw new StoreUnavailable(`MongoDB does not answer (${(error as Error).message})`)
      }
      return point
    },

    /**
     * Stored events with `after` < id ≤ `through`, in id order, that pass the filter (truncates, whose
     * `workspaceId` is null, pass a workspace filter). On MongoDB the indexes `{ type: 1, _id: 1 }` and
     * `{ workspaceId: 1, _id: 1 }` serve the filtered reads: an `$in` on the first key merges sorted scans.
     */
    history(after: string, through: string, filter: EventFilter): FindCursor<TaskEvent> {
      const query: Document = { _id: { $gt: after, $lte: through } }
      if (filter.workspace) query.workspaceId = { $in: [filter.workspace, null] }
      if (filter.types) query.type = { $in: filter.types }
      return collection(COLLECTIONS.events).find(query).sort({ _id: 1 }).batchSize(CURSOR_BATCH).map(eventFromDocument)
    },

    /** Live rows (no tombstones) of `tasks` or `workspaces`, as event rows carrying their `lastEventId`. */
    rows(name: 'tasks' | 'workspaces', workspace?: string): FindCursor<Document> {
      const query: Document = { deleted: { $ne: true } }
      if (workspace) query[name === 'tasks' ? 'workspaceId' : '_id'] = workspace
      return collection(name)
        .find(query)
        .batchSize(CURSOR_BATCH)
        .map((document) => ({ ...fromDocument(document), lastEventId: document.lastEventId }))
    },

    async ping(): Promise<void> {
      await db.command({ ping: 1 })
    },
  }
}
