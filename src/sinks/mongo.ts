// MongoDB state (contract section 4): current rows in `tasks` and `workspaces`, the history in `task_events`,
// progress in `checkpoints`. Guarantees: a batch is idempotent, so a replay after a crash writes nothing new;
// a row's document moves only to an event with a greater id than its `lastEventId`, never backwards.
// Uses only single-document writes and unordered bulk writes, which MongoDB 6+ and FerretDB 1.24 both support.

import { type AnyBulkWriteOperation, type Collection, type Db, type Document, MongoBulkWriteError, MongoClient } from 'mongodb'
import type { Entity, EventRow, TaskEvent } from '../events/events.ts'

export const COLLECTIONS = {
  tasks: 'tasks',
  workspaces: 'workspaces',
  events: 'task_events',
  checkpoints: 'checkpoints',
  snapshots: 'snapshots',
} as const

const ENTITY_COLLECTION: Record<Entity, 'tasks' | 'workspaces'> = { task: 'tasks', workspace: 'workspaces' }
const TRUNCATED_COLLECTION: Partial<Record<TaskEvent['type'], 'tasks' | 'workspaces'>> = { 'tasks.truncated': 'tasks', 'workspaces.truncated': 'workspaces' }
const DUPLICATE_KEY = 11000

export type Checkpoint = {
  slot: string
  /** Everything committed up to this LSN (text form) is durable here and published. */
  lsn: string
  /** Set while an initial load runs, cleared when it is done. */
  initialLoad: 'running' | 'done' | null
  updatedAt: Date
}

type StateDocument = Document & { _id: string; lastEventId: string; deleted?: boolean }

export type MongoSink = ReturnType<typeof createMongoSink>

/** `timestampFields` are the camelCase names of timestamp columns: they are stored as BSON dates. */
export function createMongoSink(client: MongoClient, database: string, timestampFields: ReadonlySet<string>) {
  const db: Db = client.db(database)
  const collection = <T extends Document>(name: string) => db.collection<T>(name)
  const events = collection<Document & { _id: string }>(COLLECTIONS.events)
  const checkpoints = collection<Document & { _id: string }>(COLLECTIONS.checkpoints)

  const toDocument = (row: EventRow | null): Document | null => {
    if (!row) return null
    const document: Document = {}
    for (const key in row) {
      const value = row[key]
      document[key] = timestampFields.has(key) && typeof value === 'string' && !value.endsWith('infinity') ? new Date(value) : value
    }
    return document
  }

  function eventDocument(event: TaskEvent): Document {
    const { id, commitTime, data, previous, ...rest } = event
    return { _id: id, ...rest, commitTime: new Date(commitTime), data: toDocument(data), previous: toDocument(previous) }
  }

  /** Unordered bulk write where a duplicate key means "already written" (a replay, or a newer row won). */
  async function bulkIgnoringDuplicates(target: Collection<any>, operations: AnyBulkWriteOperation<any>[]) {
    if (!operations.length) return
    try {
      await target.bulkWrite(operations, { ordered: false })
    } catch (error) {
      if (error instanceof MongoBulkWriteError) {
        const errors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors]
        if (errors.length && errors.every((writeError) => writeError.code === DUPLICATE_KEY)) return
      }
      throw error
    }
  }

  /** Row writes of one run of events with no truncate inside: the last event of each row wins. */
  async function applyRows(run: TaskEvent[]) {
    const latest = new Map<string, TaskEvent>()
    for (const event of run) {
      const entity: Entity = event.type.startsWith('workspace.') ? 'workspace' : 'task'
      const id = entity === 'task' ? event.taskId : event.workspaceId
      if (id) latest.set(`${entity}:${id}`, event)
    }
    const operations: Record<'tasks' | 'workspaces', AnyBulkWriteOperation<StateDocument>[]> = { tasks: [], workspaces: [] }
    for (const [key, event] of latest) {
      const [entity, id] = key.split(/:(.*)/s) as [Entity, string]
      const newer = { _id: id, lastEventId: { $lt: event.id } }
      // A tombstone keeps the row's last known state, so /Snapshot-style readers and drift checks can tell what went.
      const replacement = event.data
        ? { ...toDocument(event.data), lastEventId: event.id }
        : event.previous
          ? { ...toDocument(event.previous), deleted: true, lastEventId: event.id }
          : null
      operations[ENTITY_COLLECTION[entity]].push(
        replacement
          ? { replaceOne: { filter: newer, replacement: replacement as StateDocument, upsert: true } }
          : { updateOne: { filter: newer, update: { $set: { deleted: true, lastEventId: event.id } }, upsert: true } },
      )
    }
    await Promise.all([
      bulkIgnoringDuplicates(collection(COLLECTIONS.tasks), operations.tasks),
      bulkIgnoringDuplicates(collection(COLLECTIONS.workspaces), operations.workspaces),
    ])
  }

  async function applyState(batch: TaskEvent[]) {
    let runStart = 0
    for (let i = 0; i < batch.length; i++) {
      const truncated = TRUNCATED_COLLECTION[batch[i]!.type]
      if (!truncated) continue
      await applyRows(batch.slice(runStart, i))
      await tombstoneOlderThan(truncated, batch[i]!.id)
      runStart = i + 1
    }
    await applyRows(batch.slice(runStart))
  }

  /** Every live row whose last event is older than `eventId` becomes a tombstone (a truncate, or the end of a load). */
  async function tombstoneOlderThan(name: 'tasks' | 'workspaces', eventId: string) {
    await collection(name).updateMany({ lastEventId: { $lt: eventId }, deleted: { $ne: true } }, { $set: { deleted: true, lastEventId: eventId } })
  }

  return {
    db,

    async ensureIndexes() {
      await Promise.all([
        events.createIndex({ taskId: 1, _id: 1 }),
        events.createIndex({ workspaceId: 1, _id: 1 }),
        collection(COLLECTIONS.tasks).createIndex({ workspaceId: 1 }),
      ])
    },

    /** Makes a batch durable: its events in `task_events`, and the rows they leave in `tasks`/`workspaces`. */
    async writeBatch(batch: TaskEvent[]) {
      if (!batch.length) return
      await Promise.all([
        bulkIgnoringDuplicates(events, batch.map((event) => ({ insertOne: { document: eventDocument(event) } }))),
        applyState(batch),
      ])
    },

    tombstoneOlderThan,

    /** The connector's last state of these rows: null for tombstones; absent when never seen. */
    async knownRows(entity: Entity, ids: string[]): Promise<Map<string, EventRow | null>> {
      const found = new Map<string, EventRow | null>()
      if (!ids.length) return found
      const documents = await collection<StateDocument>(ENTITY_COLLECTION[entity]).find({ _id: { $in: ids } }).toArray()
      for (const document of documents) found.set(document._id, document.deleted ? null : fromDocument(document))
      return found
    },

    /** Stored events by id, as they were first emitted: a replay publishes these rather than rebuilding them. */
    async storedEvents(ids: string[]): Promise<Map<string, TaskEvent>> {
      const found = new Map<string, TaskEvent>()
      if (!ids.length) return found
      for (const document of await events.find({ _id: { $in: ids } }).toArray()) found.set(document._id, eventFromDocument(document))
      return found
    },

    async highestEventId(): Promise<string | null> {
      const [last] = await events.find({}, { projection: { _id: 1 } }).sort({ _id: -1 }).limit(1).toArray()
      return last?._id ?? null
    },

    async readCheckpoint(slot: string): Promise<Checkpoint | null> {
      const document = await checkpoints.findOne({ _id: slot })
      if (!document) return null
      return { slot, lsn: document.lsn, initialLoad: document.initialLoad ?? null, updatedAt: document.updatedAt }
    },

    async writeCheckpoint(checkpoint: Omit<Checkpoint, 'updatedAt'>) {
      const { slot, ...fields } = checkpoint
      await checkpoints.replaceOne({ _id: slot }, { ...fields, updatedAt: new Date() }, { upsert: true })
    },
  }
}

export async function connectMongo(url: string): Promise<MongoClient> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000, retryWrites: true })
  await client.connect()
  return client
}

/** Back from a stored document to the events' JSON shape: dates become ISO-8601 strings. */
export function fromDocument(document: Document): EventRow {
  const row: EventRow = {}
  for (const key in document) {
    if (key === '_id' || key === 'lastEventId' || key === 'deleted') continue
    const value = document[key]
    row[key] = value instanceof Date ? value.toISOString() : value
  }
  return row
}

function eventFromDocument(document: Document): TaskEvent {
  const { _id, commitTime, data, previous, ...rest } = document
  return {
    id: _id,
    ...rest,
    commitTime: commitTime instanceof Date ? commitTime.toISOString() : commitTime,
    data: data ? fromDocument(data) : null,
    previous: previous ? fromDocument(previous) : null,
  } as TaskEvent
}
