// The life cycle of task documents written before the connector kept one (contract section 4), filled in once
// from `task_events`, where each task's history since its creation (or its first sight) is complete.
// Guarantees: a document gets exactly the figures the live path would have given it (the same pure steps over
// the same events, up to the document's own `lastEventId`); a document already holding a life cycle, or one
// that changed while the history was read, is left alone, so running it twice, or beside a live connector,
// is harmless. Memory stays flat: tasks go a page at a time, their events without the row data.

import type { Db, Document } from 'mongodb'
import type { TaskEvent } from '../events/events.ts'
import { type LifeCycle, stepLifeCycle } from '../events/life-cycle.ts'
import { NEVER_SEEN, type RowState } from '../events/row-states.ts'
import { COLLECTIONS, MAX_UPDATES_PER_COMMAND, lifeCycleFields } from './mongo.ts'

// Tasks whose histories are read in one `$in` query: a few hundred events each at most in practice.
const TASKS_PER_PAGE = 500
// What the steps read of an event: no `data` or `previous` beyond the status.
const EVENT_FIELDS = { _id: 1, type: 1, source: 1, taskId: 1, commitTime: 1, transition: 1, 'data.status': 1 }

/** Fills the life cycle of every task document that lacks one; returns how many it filled. */
export async function fillLifeCycles(db: Db): Promise<number> {
  const tasks = db.collection<Document & { _id: string }>(COLLECTIONS.tasks)
  const lacking = tasks.find({ statusVisits: { $exists: false } }, { projection: { _id: 1, lastEventId: 1 } }).batchSize(TASKS_PER_PAGE)
  let filled = 0
  let page: { _id: string; lastEventId: string }[] = []
  const flush = async () => {
    filled += await fillPage(db, page)
    page = []
  }
  for await (const task of lacking) {
    page.push(task as { _id: string; lastEventId: string })
    if (page.length >= TASKS_PER_PAGE) await flush()
  }
  if (page.length) await flush()
  return filled
}

async function fillPage(db: Db, page: { _id: string; lastEventId: string }[]): Promise<number> {
  const through = new Map(page.map((task) => [task._id, task.lastEventId]))
  const states = new Map<string, RowState>()
  const history = db.collection<Document & { _id: string }>(COLLECTIONS.events).find({ taskId: { $in: [...through.keys()] } }, { projection: EVENT_FIELDS }).sort({ taskId: 1, _id: 1 })
  for await (const document of history) {
    const taskId = document.taskId as string
    // Only the events the document already reflects: a later one is the live path's to apply.
    if (document._id > through.get(taskId)!) continue
    const event = storedStep(document)
    const state = states.get(taskId) ?? NEVER_SEEN
    states.set(taskId, { row: event.data, lifeCycle: stepLifeCycle(event, state, true), lastEventId: event.id })
  }
  const writes = page.flatMap(({ _id, lastEventId }) => {
    const lifeCycle: LifeCycle | null | undefined = states.get(_id)?.lifeCycle
    if (!lifeCycle) return []
    const filter = { _id, lastEventId, statusVisits: { $exists: false } }
    return [{ updateOne: { filter, update: { $set: lifeCycleFields(lifeCycle) } } }]
  })
  let filled = 0
  for (let i = 0; i < writes.length; i += MAX_UPDATES_PER_COMMAND)
    filled += (await db.collection<Document & { _id: string }>(COLLECTIONS.tasks).bulkWrite(writes.slice(i, i + MAX_UPDATES_PER_COMMAND), { ordered: false })).modifiedCount
  return filled
}

/** A stored event as the life-cycle steps read it; its transition a copy, timed afresh from the history. */
function storedStep(document: Document): TaskEvent {
  const { from = null, to = null } = document.transition ?? {}
  return {
    id: document._id,
    type: document.type,
    source: document.source,
    workspaceId: null,
    taskId: document.taskId,
    lsn: null,
    xid: null,
    commitTime: document.commitTime instanceof Date ? document.commitTime.toISOString() : document.commitTime,
    data: document.data ? { status: document.data.status } : null,
    previous: null,
    ...(document.transition && { transition: { from, to, fromSince: null, inFromMs: null } }),
  }
}
