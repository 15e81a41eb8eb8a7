// bench:pipeline's ceilings: how fast the run's MongoDB server (FerretDB) and Pub/Sub emulator take the very
// documents and messages the connector wrote for the workload, driven straight with their clients and nothing
// of ours in between. A process of its own, like the connector it is compared with: it loads its input (not
// timed), then times the writes, and prints one JSON line on stdout: {"count":N,"ms":T,…}.
//
//   bun scripts/bench/pipeline-ceiling.ts mongo --url U --db D --file events.bson [--chunk 1000] [--concurrency 1]
//   bun scripts/bench/pipeline-ceiling.ts pubsub --host H:P --topic T --file messages.jsonl [--concurrency 1]
//
// mongo: per chunk of events (the connector's batch size), the events go into `task_events` with one unordered
// insertMany, and the row each chunk leaves per task or workspace (the connector's row documents: the event's
// data, or its previous state as a tombstone) into `tasks`/`workspaces`: rows first seen with one insertMany,
// the others replaced by `{ _id }` in commands of at most --replace-chunk statements, tasks' and workspaces' at
// once (FerretDB 1.24 holds a connection of its pool of 100 per matched update until its command ends: commands
// holding 100 between them never end). No read before the write: this side knows which rows exist. After each
// chunk, its one checkpoint write (an upsert of the slot's document in `checkpoints`), which the connector's
// guarantee needs and nothing else would. The connector's indexes are made first.
// pubsub: every message with its data, attributes and ordering key, in Publish requests of the most the service
// takes (1,000 messages, under 10 MB) through the client library's publisher API; one request after the other,
// as ordering keys require (a message may not overtake an earlier one of its key). --concurrency above 1 drops
// that requirement, to show what the emulator itself could take.

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { PubSub, v1 } from '@google-cloud/pubsub'
import { type AnyBulkWriteOperation, BSON, type Document, MongoClient } from 'mongodb'

const MAX_REQUEST_MESSAGES = 1_000
const CHECKPOINT_SLOT = 'bench_ceiling'
const MAX_REQUEST_BYTES = 9 * 1024 * 1024

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    db: { type: 'string' },
    host: { type: 'string' },
    topic: { type: 'string' },
    project: { type: 'string', default: 'test-project' },
    file: { type: 'string' },
    chunk: { type: 'string', default: '1000' },
    'replace-chunk': { type: 'string', default: '45' },
    concurrency: { type: 'string', default: '1' },
  },
})
const CONCURRENCY = Number(values.concurrency)

/** Concatenated BSON documents, each led by its own int32 length. */
function readBsonFile(path: string): Document[] {
  const bytes = readFileSync(path)
  const documents: Document[] = []
  for (let offset = 0; offset < bytes.length; ) {
    const length = bytes.readInt32LE(offset)
    documents.push(BSON.deserialize(bytes.subarray(offset, offset + length)))
    offset += length
  }
  return documents
}

type Collection = 'tasks' | 'workspaces'
type ChunkWrites = { events: Document[]; inserts: Record<Collection, Document[]>; replaces: Record<Collection, AnyBulkWriteOperation<any>[][]> }

/** Every chunk's writes, worked out before the clock starts. */
function planMongoWrites(documents: Document[], chunkSize: number, replaceChunk: number): ChunkWrites[] {
  const seen = new Set<string>()
  const chunks: ChunkWrites[] = []
  for (let i = 0; i < documents.length; i += chunkSize) {
    const events = documents.slice(i, i + chunkSize)
    const latest = new Map<string, Document>()
    for (const event of events) {
      const name: Collection = String(event.type).startsWith('workspace.') ? 'workspaces' : 'tasks'
      const id = name === 'tasks' ? event.taskId : event.workspaceId
      if (id) latest.set(`${name}:${id}`, event)
    }
    const inserts: Record<Collection, Document[]> = { tasks: [], workspaces: [] }
    const replacements: Record<Collection, AnyBulkWriteOperation<any>[]> = { tasks: [], workspaces: [] }
    for (const [key, event] of latest) {
      const [name, id] = key.split(/:(.*)/s) as [Collection, string]
      const row = event.data ? { ...event.data, _id: id, lastEventId: event._id } : { ...event.previous, _id: id, deleted: true, lastEventId: event._id }
      if (seen.has(key)) replacements[name].push({ replaceOne: { filter: { _id: id }, replacement: row } })
      else inserts[name].push(row)
      seen.add(key)
    }
    const split = (operations: AnyBulkWriteOperation<any>[]) =>
      Array.from({ length: Math.ceil(operations.length / replaceChunk) }, (_, n) => operations.slice(n * replaceChunk, (n + 1) * replaceChunk))
    chunks.push({ events, inserts, replaces: { tasks: split(replacements.tasks), workspaces: split(replacements.workspaces) } })
  }
  return chunks
}

/** Runs `work` on every item, `concurrency` at a time, items started in order. */
async function eachConcurrently<T>(items: T[], concurrency: number, work: (item: T) => Promise<unknown>) {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await work(items[next++]!)
  }))
}

async function mongoCeiling() {
  const documents = readBsonFile(values.file!)
  const chunks = planMongoWrites(documents, Number(values.chunk), Number(values['replace-chunk']))
  const client = new MongoClient(values.url!, { serverSelectionTimeoutMS: 30_000 })
  await client.connect()
  try {
    const db = client.db(values.db!)
    await Promise.all([
      db.collection('task_events').createIndex({ taskId: 1, _id: 1 }),
      db.collection('task_events').createIndex({ workspaceId: 1, _id: 1 }),
      db.collection('tasks').createIndex({ workspaceId: 1 }),
    ])
    const started = performance.now()
    const checkpoints = db.collection<{ _id: string }>('checkpoints')
    await eachConcurrently(chunks, CONCURRENCY, async ({ events, inserts, replaces }) => {
      await Promise.all([
        db.collection('task_events').insertMany(events, { ordered: false }),
        ...(['tasks', 'workspaces'] as const).map(async (name) => {
          if (inserts[name].length) await db.collection(name).insertMany(inserts[name], { ordered: false })
          for (const command of replaces[name]) await db.collection(name).bulkWrite(command, { ordered: false })
        }),
      ])
      // The one write the guarantee adds per batch: the slot's progress, once the batch is stored.
      await checkpoints.updateOne({ _id: CHECKPOINT_SLOT }, { $set: { lsn: events.at(-1)!._id, updatedAt: new Date() } }, { upsert: true })
    })
    const ms = performance.now() - started
    const stored = await db.collection('task_events').countDocuments()
    if (stored !== documents.length) throw new Error(`task_events holds ${stored} documents, not ${documents.length}`)
    const count = (pick: (chunk: ChunkWrites) => number) => chunks.reduce((sum, chunk) => sum + pick(chunk), 0)
    return {
      count: documents.length,
      ms,
      rowInserts: count((chunk) => chunk.inserts.tasks.length + chunk.inserts.workspaces.length),
      rowReplaces: count((chunk) => [...chunk.replaces.tasks, ...chunk.replaces.workspaces].flat().length),
    }
  } finally {
    await client.close()
  }
}

type StoredMessage = { data: string; attributes: Record<string, string>; orderingKey: string }
type OutgoingMessage = { data: Buffer; attributes: Record<string, string>; orderingKey?: string }

async function pubsubCeiling() {
  const messages: OutgoingMessage[] = readFileSync(values.file!, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as StoredMessage)
    .map((message) => ({ data: Buffer.from(message.data, 'base64'), attributes: message.attributes, ...(message.orderingKey ? { orderingKey: message.orderingKey } : {}) }))
  const requests: OutgoingMessage[][] = []
  let request: OutgoingMessage[] = []
  let bytes = 0
  for (const message of messages) {
    if (request.length && (request.length === MAX_REQUEST_MESSAGES || bytes + message.data.length > MAX_REQUEST_BYTES)) {
      requests.push(request)
      request = []
      bytes = 0
    }
    request.push(message)
    bytes += message.data.length
  }
  if (request.length) requests.push(request)

  const client = new PubSub({ projectId: values.project!, apiEndpoint: values.host!, emulatorMode: true, universeDomain: 'googleapis.com' })
  const publisher = new v1.PublisherClient((await client.getClientConfig()) as ConstructorParameters<typeof v1.PublisherClient>[0])
  try {
    const [topic] = await client.createTopic(values.topic!)
    // Opens the channel before the clock starts, as the connector's start-up does.
    await publisher.getTopic({ topic: topic.name })
    const started = performance.now()
    await eachConcurrently(requests, CONCURRENCY, (messages) => publisher.publish({ topic: topic.name, messages }))
    return { count: messages.length, ms: performance.now() - started, requests: requests.length }
  } finally {
    await publisher.close()
    await client.close()
  }
}

const mode = positionals[0]
if (mode !== 'mongo' && mode !== 'pubsub') {
  console.error('usage: pipeline-ceiling.ts mongo|pubsub …')
  process.exit(2)
}
console.log(JSON.stringify(mode === 'mongo' ? await mongoCeiling() : await pubsubCeiling()))
process.exit(0)
