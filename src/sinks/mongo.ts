// MongoDB state (contract section 4): current rows in `tasks` and `workspaces`, the history in `task_events`,
// progress in `checkpoints`. Field types follow each row's own (its TIMESTAMPS become BSON dates), never a list
// of columns read once, so a migration's new or retyped column is stored as typed from its first change on.
// Guarantees: a batch is idempotent, so a replay after a crash writes nothing new;
// a row's document moves only to an event with a greater id than its `lastEventId`, never backwards.
// Uses only filters on _id (with the row guard beside it) and unordered bulk writes, which MongoDB 6+ and
// FerretDB 1.24 both support. A batch's history and its rows are separate writes, so that a caller may store
// one batch's history while the batch before writes its rows; keeping history before state is the caller's
// part (see `writeBatch`). An event over MongoDB's document limit is stored as a copy that leaves its largest
// values out (events/omit.ts, `storedCopy`); so is a row, should its own document be over the limit.

import { BSON, type Collection, type Db, type Document, type Filter, MongoBulkWriteError, MongoClient } from 'mongodb'
import { TIMESTAMPS } from '../decode/types.ts'
import { type Entity, type EventRow, type TaskEvent, eventRowKey } from '../events/events.ts'
import { type KnownTask, LIFE_CYCLE, type LifeCycle, type WithLifeCycle } from '../events/life-cycle.ts'
import type { RowState } from '../events/row-states.ts'
import { fitEvent } from '../events/omit.ts'
import { Unreachable } from '../unreachable.ts'

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
// FerretDB 1.24 holds one of its 100 SQLite connections per matched update until the whole command ends,
// and commands holding 100 between them never end: updates go in commands of at most this many. Tasks' and
// workspaces' commands run at once, beside their rows' inserts, the next batch's history and a checkpoint:
// 45 each leaves those room under 100.
export const MAX_UPDATES_PER_COMMAND = 45
// Ids in one `{ _id: { $in } }` lookup: one round trip for a typical run's rows, far below any server's limits.
const IDS_PER_LOOKUP = 500
// Rows whose lastEventId this process remembers because it wrote it (see `lastWritten`). About 100 bytes each.
const KNOWN_WRITES = 10_000
// MongoDB's limit on one document (maxBsonObjectSize), which FerretDB keeps too.
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024

export type Checkpoint = {
  slot: string
  /** Everything committed up to this LSN (text form) is durable here and published. */
  lsn: string
  /**
   * `running` from before the slot is created until its initial load is whole; `done` after (or at once with
   * --initial-load never). Only `done` lets a start use an existing slot; `running` under a live lease means
   * another process is loading it; anything else means the slot's load never finished, and the slot is dropped
   * and loaded again (see load-lease.ts).
   */
  initialLoad: 'running' | 'done' | null
  /** The consistent point of the slot whose initial load finished (text form). */
  loadedAt: string | null
  /** The process that claimed the load (`running`), or finished it (`done`). */
  loadOwner: string | null
  /** Until when the owner of a `running` load is known alive: it renews this while it loads. */
  loadLeaseUntil: Date | null
  /** When the life cycle of task documents written before it was kept was filled in from the history (life-cycle-backfill.ts). */
  lifeCycleFilledAt: Date | null
  updatedAt: Date
}

type StateDocument = Document & { _id: string; lastEventId: string; deleted?: boolean }
/** A row write: a whole new state, or (`partial`) the known fields of a row whose large columns the WAL left out. */
type RowWrite = { document: StateDocument; partial: boolean }

export type MongoSink = ReturnType<typeof createMongoSink>

export function createMongoSink(client: MongoClient, database: string) {
  const db: Db = client.db(database)
  const collection = <T extends Document>(name: string) => db.collection<T>(name)
  const events = collection<Document & { _id: string }>(COLLECTIONS.events)
  const checkpoints = collection<Document & { _id: string }>(COLLECTIONS.checkpoints)

  // Events this sink read back from `task_events` (a replay republishes them): not inserted again, since a
  // duplicate key costs FerretDB a transaction per document.
  const readBack = new WeakSet<TaskEvent>()

  /** Events are immutable: a duplicate key means the event was stored before (a replay). */
  async function insertEvents(batch: TaskEvent[]) {
    const fresh = batch.filter((event) => !readBack.has(event))
    if (!fresh.length) return
    try {
      await events.insertMany(fresh.map(eventDocument) as (Document & { _id: string })[], { ordered: false })
    } catch (error) {
      if (!duplicateIndexes(error)) throw error
    }
  }

  /**
   * The `lastEventId` of rows this process wrote, most recently written last (set once a write succeeded).
   * Such a row exists, so its next event goes straight to the guarded replace without trying an insert
   * first; an event at or below its entry is a replay and writes nothing.
   */
  const lastWritten = new Map<string, string>()
  function rememberWritten(name: string, id: string, eventId: string) {
    const key = `${name}:${id}`
    const known = lastWritten.get(key)
    lastWritten.delete(key)
    // Writes that land out of order (a retry beside an attempt given up on) must not make it forget a newer one.
    lastWritten.set(key, known !== undefined && known > eventId ? known : eventId)
    if (lastWritten.size > KNOWN_WRITES) lastWritten.delete(lastWritten.keys().next().value!)
  }

  /**
   * Row writes of one run of events with no truncate inside: the last event of each row wins, and only
   * where it is newer than the stored `lastEventId`. That guard is in each replace's filter,
   * `{ _id, lastEventId: { $lt } }`, so the server applies it whatever else writes the row meanwhile (a
   * retry, an attempt given up on that still lands). A row this process wrote before is replaced at once,
   * beside the insert of any other; a duplicate key there names a row that exists and gets the guarded replace.
   */
  async function applyRows(run: TaskEvent[], copies: TaskEvent[]) {
    const latest = new Map<string, { name: 'tasks' | 'workspaces'; id: string; event: TaskEvent; oversized: boolean }>()
    run.forEach((event, index) => {
      const key = eventRowKey(event)
      if (key) latest.set(`${key.entity}:${key.id}`, { name: ENTITY_COLLECTION[key.entity], id: key.id, event, oversized: copies[index] !== event })
    })
    await Promise.all(
      (['tasks', 'workspaces'] as const).map(async (name) => {
        const rows = [...latest.values()].filter((row) => row.name === name)
        if (!rows.length) return
        const target = collection<StateDocument>(name)
        const writes = new Map(rows.map(({ id, event, oversized }) => [id, rowWrite(id, event, oversized)]))
        const update: string[] = []
        const unknown: StateDocument[] = []
        for (const [id, { document }] of writes) {
          const written = lastWritten.get(`${name}:${id}`)
          if (written === undefined) unknown.push(document)
          else if (written < document.lastEventId) update.push(id)
        }
        // Different rows, so one round trip instead of two: the known rows' replaces beside the others' insert.
        const [, existing] = await Promise.all([replaceGuarded(target, update, writes), unknown.length ? insertNew(target, unknown) : []])
        await replaceGuarded(target, existing, writes)
        for (const [id, { document }] of writes) rememberWritten(name, id, document.lastEventId)
      }),
    )
  }

  /** The guarded writes of these rows, in commands of at most MAX_UPDATES_PER_COMMAND, one after the other. */
  async function replaceGuarded(target: Collection<StateDocument>, ids: string[], writes: Map<string, RowWrite>) {
    for (let i = 0; i < ids.length; i += MAX_UPDATES_PER_COMMAND)
      await target.bulkWrite(ids.slice(i, i + MAX_UPDATES_PER_COMMAND).map((id) => guardedWrite(writes.get(id)!)), { ordered: false })
  }

  /** The write of a row that exists, applied only where the stored `lastEventId` is older. */
  function guardedWrite({ document, partial }: RowWrite) {
    const filter = { _id: document._id, lastEventId: { $lt: document.lastEventId } }
    if (!partial) return { replaceOne: { filter, replacement: document } }
    const { _id, ...fields } = document
    // A tombstone's partial write (one that keeps the stored life cycle) sets `deleted` itself. A row with data
    // exists: a tombstone under its id (a deleted row whose id a key change took) comes back to life.
    if (fields.deleted) return { updateOne: { filter, update: { $set: fields } } }
    return { updateOne: { filter, update: { $set: fields, $unset: { deleted: '' } } } }
  }

  /** Inserts the documents whose _id is free; returns the ids that already exist. */
  async function insertNew(target: Collection<StateDocument>, documents: StateDocument[]): Promise<string[]> {
    try {
      await target.insertMany(documents, { ordered: false })
      return []
    } catch (error) {
      const duplicates = duplicateIndexes(error)
      if (!duplicates) throw error
      return duplicates.map((index) => documents[index]!._id)
    }
  }

  async function applyState(batch: TaskEvent[], copies: TaskEvent[]) {
    let runStart = 0
    for (let i = 0; i < batch.length; i++) {
      const truncated = TRUNCATED_COLLECTION[batch[i]!.type]
      if (!truncated) continue
      await applyRows(batch.slice(runStart, i), copies.slice(runStart, i))
      await tombstoneOlderThan(truncated, batch[i]!.id)
      runStart = i + 1
    }
    await applyRows(batch.slice(runStart), copies.slice(runStart))
  }

  /** Every live row whose last event is older than `eventId` becomes a tombstone (a truncate, or the end of a load). */
  async function tombstoneOlderThan(name: 'tasks' | 'workspaces', eventId: string) {
    for (const key of lastWritten.keys()) if (key.startsWith(name + ':')) lastWritten.delete(key)
    await collection(name).updateMany({ lastEventId: { $lt: eventId }, deleted: { $ne: true } }, { $set: { deleted: true, lastEventId: eventId } })
  }

  return {
    db,

    async ensureIndexes() {
      await Promise.all([
        events.createIndex({ taskId: 1, _id: 1 }),
        events.createIndex({ workspaceId: 1, _id: 1 }),
        // The Stream's `types` filter over the history (src/http/store.ts).
        events.createIndex({ type: 1, _id: 1 }),
        collection(COLLECTIONS.tasks).createIndex({ workspaceId: 1 }),
      ])
    },

    /**
     * Makes a batch durable: its events in `task_events`, then the rows they leave in `tasks`/`workspaces`.
     * A batch's rows must come after its own history and every earlier batch's (`writeHistory` one batch
     * after the other, `writeState` only once it is stored), so that a row never holds a state whose event
     * is not stored: after a crash the replay finds every event up to a row's `lastEventId` in the history,
     * and takes it from there rather than rebuilding it from a row that is already ahead. `copies` are the
     * events as `task_events` holds them (`storedCopy`); the rows are the events' own.
     */
    async writeBatch(batch: TaskEvent[], copies: TaskEvent[] = batch.map(storedCopy)) {
      await insertEvents(copies)
      await applyState(batch, copies)
    },

    /** A batch's events, as `task_events` holds them (`storedCopy`), idempotent: a replayed event is not stored twice. */
    writeHistory: insertEvents,

    /**
     * The rows a batch leaves, each only where it is newer than the stored one; its history must be stored
     * first. `copies` are its events as stored (the events themselves when they fit): a row whose event was
     * too large is weighed too.
     */
    writeState: (batch: TaskEvent[], copies: TaskEvent[] = batch) => applyState(batch, copies),

    /** Up to `limit` live rows whose last event is older than `eventId`, after `afterId` in `_id` order. */
    async staleRows(name: 'tasks' | 'workspaces', eventId: string, afterId: string, limit: number): Promise<StateDocument[]> {
      return collection<StateDocument>(name).find({ _id: { $gt: afterId }, lastEventId: { $lt: eventId }, deleted: { $ne: true } }).sort({ _id: 1 }).limit(limit).toArray()
    },

    /** The connector's last state of these rows (a tombstone's row is null); absent when never seen. */
    async knownRows(entity: Entity, ids: string[]): Promise<Map<string, RowState>> {
      const found = new Map<string, RowState>()
      for (const [id, document] of await findByIds(collection<StateDocument>(ENTITY_COLLECTION[entity]), ids))
        found.set(id, {
          row: document.deleted ? null : fromDocument(document, STATE_FIELDS),
          lifeCycle: lifeCycleFromDocument(document),
          lastEventId: document.lastEventId,
        })
      return found
    },

    /** What the life cycle of these tasks needs of their documents (a load's): the status and the life cycle; absent when never seen. */
    async knownLifeCycles(ids: string[]): Promise<Map<string, KnownTask>> {
      const found = new Map<string, KnownTask>()
      for (const [id, document] of await findByIds(collection<StateDocument>(COLLECTIONS.tasks), ids, LIFE_CYCLE_PROJECTION))
        found.set(id, { row: document.deleted ? null : { status: document.status }, lifeCycle: lifeCycleFromDocument(document) })
      return found
    },

    /** Whether any document (a tombstone included) of the entity exists. */
    async holdsAny(entity: Entity): Promise<boolean> {
      return (await collection(ENTITY_COLLECTION[entity]).findOne({}, { projection: { _id: 1 } })) !== null
    },

    /** Stored events by id, as they were first emitted: a replay publishes these rather than rebuilding them. */
    async storedEvents(ids: string[]): Promise<Map<string, TaskEvent>> {
      const found = new Map<string, TaskEvent>()
      for (const [id, document] of await findByIds(events, ids)) {
        const event = eventFromDocument(document)
        readBack.add(event)
        found.set(id, event)
      }
      return found
    },

    async highestEventId(): Promise<string | null> {
      const [last] = await events.find({}, { projection: { _id: 1 } }).sort({ _id: -1 }).limit(1).toArray()
      return last?._id ?? null
    },

    async readCheckpoint(slot: string): Promise<Checkpoint | null> {
      const document = await checkpoints.findOne({ _id: slot })
      if (!document) return null
      return {
        slot,
        lsn: document.lsn ?? null,
        initialLoad: document.initialLoad ?? null,
        loadedAt: document.loadedAt ?? null,
        loadOwner: document.loadOwner ?? null,
        loadLeaseUntil: document.loadLeaseUntil ?? null,
        lifeCycleFilledAt: document.lifeCycleFilledAt ?? null,
        updatedAt: document.updatedAt,
      }
    },

    /**
     * Records the slot's load as `owner`'s, running until `leaseUntil`, if the record is still as `seen` (a
     * compare-and-set on its owner and last write). False when another process wrote it first.
     */
    async claimLoad(slot: string, owner: string, leaseUntil: Date, seen: Checkpoint | null): Promise<boolean> {
      const claim = { initialLoad: 'running', loadedAt: null, loadOwner: owner, loadLeaseUntil: leaseUntil, updatedAt: new Date() }
      if (!seen) {
        try {
          await checkpoints.insertOne({ _id: slot, ...claim })
          return true
        } catch (error) {
          if ((error as { code?: number }).code === DUPLICATE_KEY) return false
          throw error
        }
      }
      const unchanged: Filter<Document & { _id: string }> = { _id: slot, updatedAt: seen.updatedAt }
      if (seen.loadOwner !== null) unchanged.loadOwner = seen.loadOwner
      return (await checkpoints.updateOne(unchanged, { $set: claim })).matchedCount === 1
    },

    /** Extends `owner`'s lease on a running load; false when the load is no longer its own. */
    async renewLoad(slot: string, owner: string, leaseUntil: Date): Promise<boolean> {
      const renewed = await checkpoints.updateOne({ _id: slot, loadOwner: owner, initialLoad: 'running' }, { $set: { loadLeaseUntil: leaseUntil, updatedAt: new Date() } })
      return renewed.matchedCount === 1
    },

    /** Records `owner`'s load done at `lsn`; false when the load is no longer its own. */
    async finishLoad(slot: string, owner: string, lsn: string): Promise<boolean> {
      const finished = await checkpoints.updateOne(
        { _id: slot, loadOwner: owner, initialLoad: 'running' },
        { $set: { lsn, initialLoad: 'done', loadedAt: lsn, loadLeaseUntil: null, updatedAt: new Date() } },
      )
      return finished.matchedCount === 1
    },

    /** Sets the given fields of the slot's checkpoint, keeping the others. */
    async writeCheckpoint({ slot, ...fields }: Partial<Omit<Checkpoint, 'updatedAt'>> & { slot: string }) {
      await checkpoints.updateOne({ _id: slot }, { $set: { ...fields, updatedAt: new Date() } }, { upsert: true })
    },
  }
}

function eventDocument(event: TaskEvent): Document {
  const { id, commitTime, data, previous, ...rest } = event
  const document: Document = { _id: id, ...rest, commitTime: new Date(commitTime), data: toDocument(data), previous: toDocument(previous) }
  if (event.transition?.fromSince) document.transition = { ...event.transition, fromSince: new Date(event.transition.fromSince) }
  return document
}

/**
 * The event as `task_events` holds it: the event itself, or, when its document is over MAX_DOCUMENT_BYTES,
 * a copy with its largest values left out and named in `omitted`. The Stream serves this copy.
 */
export function storedCopy(event: TaskEvent): TaskEvent {
  return fitEvent(event, (candidate) => BSON.calculateObjectSize(eventDocument(candidate)), MAX_DOCUMENT_BYTES)
}

/**
 * The row as stored after the event: its data, or a tombstone keeping the last known state. An event that
 * lacks unchanged TOAST columns (`unchangedToast`) sets its known fields only, so that a stored value of
 * those columns stays. A row over MAX_DOCUMENT_BYTES leaves its largest values out, as its event does.
 */
function rowWrite(id: string, event: TaskEvent & WithLifeCycle, oversized: boolean): RowWrite {
  const write = wholeRowWrite(id, event)
  if (!oversized || BSON.calculateObjectSize(write.document) <= MAX_DOCUMENT_BYTES) return write
  const row: TaskEvent = event.data ? { ...event, previous: null } : { ...event, data: null }
  return wholeRowWrite(id, fitEvent(row, (candidate) => BSON.calculateObjectSize(wholeRowWrite(id, candidate).document), MAX_DOCUMENT_BYTES))
}

function wholeRowWrite(id: string, event: TaskEvent & WithLifeCycle): RowWrite {
  const lifeCycle = event[LIFE_CYCLE]
  const document: StateDocument = event.data
    ? { ...toDocument(event.data), _id: id, lastEventId: event.id }
    : { ...toDocument(event.previous), _id: id, deleted: true, lastEventId: event.id }
  if (lifeCycle) Object.assign(document, lifeCycleFields(lifeCycle))
  // A task event that brings no life cycle (one not built by this process, such as a replayed one whose row
  // is ahead) leaves the stored one as it is.
  const keepsLifeCycle = !lifeCycle && event.type.startsWith('task.')
  return { document, partial: (!!event.data && !!event.unchangedToast?.length) || keepsLifeCycle }
}

/** Documents by _id, `IDS_PER_LOOKUP` in one `$in` query, one query at a time. */
async function findByIds<T extends Document & { _id: string }>(target: Collection<T>, ids: string[], projection?: Document): Promise<Map<string, T>> {
  const found = new Map<string, T>()
  for (let i = 0; i < ids.length; i += IDS_PER_LOOKUP)
    for (const document of await target.find({ _id: { $in: ids.slice(i, i + IDS_PER_LOOKUP) } } as Filter<T>, { projection }).toArray())
      found.set(document._id, document as T)
  return found
}

/** The indexes of the documents refused for a duplicate key, when that is the only error; else null. */
function duplicateIndexes(error: unknown): number[] | null {
  if (!(error instanceof MongoBulkWriteError)) return null
  const errors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors]
  return errors.length && errors.every((writeError) => writeError.code === DUPLICATE_KEY) ? errors.map((writeError) => writeError.index) : null
}

// A server that stops answering must cost seconds, not the pipeline's 60 s attempt deadline. The driver's
// monitor finds it: a heartbeat every HEARTBEAT_MS that gets no answer within CONNECT_TIMEOUT_MS marks the
// server unknown and interrupts the calls in use, which then fail (10 to 20 s after the server stopped
// answering), are retried by the pipeline and show in /info. The socket timeout is only a backstop for a
// connection that dies alone: it must stay above the longest single call the connector makes on a slow but
// healthy server (a truncate's or a load's tombstones scan a whole collection; FerretDB took over 30 s for
// 200,000 rows on a loaded machine), or such a call would fail and be retried for good.
const HEARTBEAT_MS = 10_000
const CONNECT_TIMEOUT_MS = 10_000
const SERVER_SELECTION_TIMEOUT_MS = 10_000
const SOCKET_TIMEOUT_MS = 300_000

export async function connectMongo(url: string): Promise<MongoClient> {
  const client = new MongoClient(url, {
    serverSelectionTimeoutMS: SERVER_SELECTION_TIMEOUT_MS,
    heartbeatFrequencyMS: HEARTBEAT_MS,
    connectTimeoutMS: CONNECT_TIMEOUT_MS,
    socketTimeoutMS: SOCKET_TIMEOUT_MS,
    retryWrites: true,
  })
  try {
    await client.connect()
  } catch (error) {
    await client.close().catch(() => {})
    throw new Unreachable('MongoDB', mongoAddress(url), `connecting for ${SERVER_SELECTION_TIMEOUT_MS / 1000} s`, error)
  }
  return client
}

/** The hosts of a MongoDB connection string, without its credentials and options. */
export function mongoAddress(url: string): string {
  return url.replace(/^(mongodb(?:\+srv)?:\/\/)(?:[^@/]*@)?([^/?]*).*$/, '$1$2')
}

/** A row as stored: its timestamps as BSON dates ('infinity', and times beyond a Date's range, stay text). */
function toDocument(row: EventRow | null): Document | null {
  if (!row) return null
  const document: Document = { ...row }
  const timestamps = row[TIMESTAMPS]
  if (timestamps)
    for (const key of timestamps) {
      const value = row[key]
      if (typeof value === 'string' && !value.endsWith('infinity')) document[key] = new Date(value)
    }
  return document
}

/** A task's life cycle as its document holds it (contract section 4): `statusSince` a BSON date. */
export function lifeCycleFields({ statusSince, timeInStatus, statusVisits }: LifeCycle): Document {
  return { statusSince: statusSince === null ? null : new Date(statusSince), timeInStatus, statusVisits }
}

/** Back from a task document to its life cycle; null for a document written before the connector kept one. */
export function lifeCycleFromDocument(document: Document): LifeCycle | null {
  const { statusSince, timeInStatus, statusVisits } = document
  if (!statusVisits || !timeInStatus) return null
  return { statusSince: statusSince instanceof Date ? statusSince.toISOString() : null, timeInStatus, statusVisits }
}

const LIFE_CYCLE_PROJECTION = { status: 1, deleted: 1, statusSince: 1, timeInStatus: 1, statusVisits: 1 }

// Fields of a stored row that are not row data: `fromDocument` leaves them out.
const BOOKKEEPING = new Set(['_id', 'lastEventId', 'deleted'])
/** ... and for a row's state, its life cycle too, kept beside the row (never in `data` or `previous`). */
const STATE_FIELDS = new Set([...BOOKKEEPING, 'statusSince', 'timeInStatus', 'statusVisits'])

/** Back from a stored document to the events' JSON shape: dates become ISO-8601 strings, named in TIMESTAMPS. */
export function fromDocument(document: Document, skipped: ReadonlySet<string> = BOOKKEEPING): EventRow {
  const row: EventRow = {}
  let timestamps: string[] | undefined
  for (const key in document) {
    if (skipped.has(key)) continue
    const value = document[key]
    if (value instanceof Date) {
      row[key] = value.toISOString()
      ;(timestamps ??= []).push(key)
    } else row[key] = value
  }
  if (timestamps) row[TIMESTAMPS] = timestamps
  return row
}

/** Back from a stored `task_events` document to the event as it was emitted. */
export function eventFromDocument(document: Document): TaskEvent {
  const { _id, commitTime, data, previous, ...rest } = document
  if (rest.transition?.fromSince instanceof Date) rest.transition = { ...rest.transition, fromSince: rest.transition.fromSince.toISOString() }
  return {
    id: _id,
    ...rest,
    commitTime: commitTime instanceof Date ? commitTime.toISOString() : commitTime,
    data: data ? fromDocument(data) : null,
    previous: previous ? fromDocument(previous) : null,
  } as TaskEvent
}
