// The test servers behave as the connector's tests need: FerretDB answers the MongoDB operations the
// connector may use (and refuses those it must not), survives a stop or a crash with its data, and
// the Pub/Sub emulator holds publishes while paused, keeps its messages, and refuses what Pub/Sub refuses.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { PubSub, v1 } from '@google-cloud/pubsub'
import { type Collection, MongoBulkWriteError, MongoClient, MongoServerError } from 'mongodb'
import { emulatorOptions } from '../../scripts/pubsub-probe.ts'
import { type FerretDb, startFerretDb } from './ferretdb.ts'
import { type PubSubEmulator, startPubSubEmulator } from './pubsub.ts'

type Doc = { _id: string; lastEventId?: string; [field: string]: unknown }

/** The contract's rule: apply a change only when its event id is newer than the stored one. */
const newerThanStored = (_id: string, eventId: string) => ({
  _id,
  $or: [{ lastEventId: { $lt: eventId } }, { lastEventId: { $exists: false } }],
})

async function errorOf(promise: Promise<unknown>): Promise<any> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

describe('FerretDB', () => {
  let ferret: FerretDb
  let client: MongoClient
  let n = 0
  const collection = () => client.db('harness').collection<Doc>(`c${++n}`)

  beforeAll(async () => {
    ferret = await startFerretDb()
    client = new MongoClient(ferret.url, { serverSelectionTimeoutMS: 1_000 })
  }, 120_000)

  afterAll(async () => {
    await client?.close()
    await ferret?.close()
  }, 120_000)

  test('applies an ordered bulkWrite of insert, conditional upserts and replace', async () => {
    const tasks = collection()
    await tasks.insertOne({ _id: 'older', lastEventId: '0002', title: 'old' })
    const result = await tasks.bulkWrite(
      [
        { insertOne: { document: { _id: 'inserted', lastEventId: '0003' } } },
        { updateOne: { filter: newerThanStored('absent', '0004'), update: { $set: { lastEventId: '0004' } }, upsert: true } },
        { updateOne: { filter: newerThanStored('older', '0005'), update: { $set: { lastEventId: '0005', title: 'new' } }, upsert: true } },
        { replaceOne: { filter: newerThanStored('inserted', '0006'), replacement: { lastEventId: '0006', replaced: true }, upsert: true } },
      ],
      { ordered: true },
    )
    expect(result).toMatchObject({ insertedCount: 1, upsertedCount: 1, matchedCount: 2, modifiedCount: 2 })
    expect(await tasks.find().sort({ _id: 1 }).toArray()).toEqual([
      { _id: 'absent', lastEventId: '0004' },
      { _id: 'inserted', lastEventId: '0006', replaced: true },
      { _id: 'older', lastEventId: '0005', title: 'new' },
    ])
  })

  test('a stale conditional update changes nothing; as an upsert it fails with 11000, as on MongoDB', async () => {
    const tasks = collection()
    await tasks.insertOne({ _id: 't', lastEventId: '0009', title: 'kept' })
    const plain = await tasks.updateOne(newerThanStored('t', '0008'), { $set: { lastEventId: '0008', title: 'stale' } })
    expect(plain).toMatchObject({ matchedCount: 0, modifiedCount: 0, upsertedCount: 0 })
    const upsert = await errorOf(tasks.updateOne(newerThanStored('t', '0008'), { $set: { lastEventId: '0008' } }, { upsert: true }))
    expect(upsert).toBeInstanceOf(MongoServerError)
    expect(upsert.code).toBe(11000)
    expect(await tasks.findOne({ _id: 't' })).toEqual({ _id: 't', lastEventId: '0009', title: 'kept' })
  })

  test('an unordered insert reports the duplicate key as 11000 and lands the others', async () => {
    const events = collection()
    await events.insertOne({ _id: 'e2' })
    const err = await errorOf(events.insertMany([{ _id: 'e1' }, { _id: 'e2' }, { _id: 'e3' }, { _id: 'e4' }], { ordered: false }))
    expect(err).toBeInstanceOf(MongoBulkWriteError)
    expect(err.code).toBe(11000)
    expect(err.writeErrors.map((e: { code: number; index: number }) => [e.code, e.index])).toEqual([[11000, 1]])
    expect(err.result.insertedCount).toBe(3)
    expect((await events.find().sort({ _id: 1 }).toArray()).map((d) => d._id)).toEqual(['e1', 'e2', 'e3', 'e4'])
  })

  test('round-trips dates, nested documents, arrays and nulls, and queries nested fields', async () => {
    const tasks = collection()
    const doc = { _id: 'x', data: { when: new Date('2024-05-06T07:08:09.123Z'), tags: ['a', 'b'], meta: { n: 1.5, none: null } } }
    await tasks.insertOne(doc)
    expect(await tasks.findOne({ _id: 'x' })).toEqual(doc)
    expect(await tasks.countDocuments({ 'data.meta.n': 1.5 })).toBe(1)
  })

  test('creates indexes, idempotently', async () => {
    const events = collection()
    expect(await events.createIndex({ workspaceId: 1, _id: 1 })).toBe('workspaceId_1__id_1')
    expect(await events.createIndex({ workspaceId: 1, _id: 1 })).toBe('workspaceId_1__id_1')
    expect(await events.createIndex({ taskId: 1 }, { unique: true, name: 'task' })).toBe('task')
    const indexes = await events.listIndexes().toArray()
    expect(indexes.map((i) => i.name).sort()).toEqual(['_id_', 'task', 'workspaceId_1__id_1'])
    expect(indexes.find((i) => i.name === 'task')?.unique).toBe(true)
  })

  // FerretDB 1.24 on SQLite keeps each matched update's cursor open until the whole `update` command
  // ends, on a pool of 100 connections: a command with 100 or more matching updates waits forever.
  test('applies 99 matching updates in one command, the most FerretDB 1.24 can', async () => {
    const tasks = collection()
    await tasks.insertMany(Array.from({ length: 99 }, (_, i) => ({ _id: `k${i}`, lastEventId: '0001' })))
    const result = await tasks.bulkWrite(
      Array.from({ length: 99 }, (_, i) => ({
        updateOne: { filter: newerThanStored(`k${i}`, '0002'), update: { $set: { lastEventId: '0002' } }, upsert: true },
      })),
    )
    expect(result.modifiedCount).toBe(99)
  })

  test('refuses what the connector must not use', async () => {
    const c = collection()
    await c.insertOne({ _id: 'a' })
    const refusals = await Promise.all([
      errorOf(c.createIndex({ p: 1 }, { partialFilterExpression: { deleted: false } })),
      errorOf(c.createIndex({ t: 1 }, { expireAfterSeconds: 60 })),
      errorOf(c.aggregate([{ $lookup: { from: 'x', localField: '_id', foreignField: '_id', as: 'x' } }]).toArray()),
      errorOf(c.updateOne({ _id: 'a' }, [{ $set: { z: 1 } }])),
      errorOf(c.watch().tryNext()),
    ])
    expect(refusals.map((e) => e.code)).toEqual([238, 238, 238, 14, 238])
    const session = client.startSession()
    try {
      const tx = await errorOf(session.withTransaction(() => c.insertOne({ _id: 'tx' }, { session })))
      expect(tx).toBeInstanceOf(MongoServerError)
    } finally {
      await session.endSession()
    }
  })

  test('stop() makes it unreachable; restart() brings it back on the same port with its data', async () => {
    const tasks = collection()
    await tasks.insertOne({ _id: 'survivor', lastEventId: '0001' })
    await ferret.stop()
    expect(await errorOf(tasks.findOne({ _id: 'survivor' }))).toBeInstanceOf(Error)
    await ferret.restart()
    expect(await tasks.findOne({ _id: 'survivor' })).toEqual({ _id: 'survivor', lastEventId: '0001' })
  })

  test('keeps acknowledged writes through a crash (kill)', async () => {
    const tasks = collection()
    await tasks.insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: `d${i}` })))
    ferret.kill()
    await ferret.restart()
    expect(await tasks.countDocuments()).toBe(50)
  })
})

describe('the Pub/Sub emulator', () => {
  let emulator: PubSubEmulator
  let pubsub: PubSub

  beforeAll(async () => {
    emulator = await startPubSubEmulator()
    pubsub = new PubSub(emulatorOptions(emulator.host, 'harness'))
  }, 120_000)

  afterAll(async () => {
    await pubsub?.close()
    await emulator?.stop()
  }, 120_000)

  test('holds a publish while paused, delivers it once resumed, and keeps earlier messages', async () => {
    const [topic] = await pubsub.createTopic('paused')
    await topic.publishMessage({ data: Buffer.from('before'), attributes: { n: '1' } })

    await emulator.pause()
    expect(await errorOf(Bun.connect({ hostname: '127.0.0.1', port: emulator.port, socket: { data() {} } }))).toBeInstanceOf(Error)
    let delivered = false
    const publishing = topic.publishMessage({ data: Buffer.from('during') }).then((id) => {
      delivered = true
      return id
    })
    await Bun.sleep(1_500)
    expect(delivered).toBe(false)

    await emulator.resume()
    expect(await publishing).toBeString()
    const messages = await emulator.messages('paused')
    expect(messages.map((m) => m.data.toString())).toEqual(['before', 'during'])
    expect(messages[0]!.attributes).toEqual({ n: '1' })
    expect(await emulator.count('paused')).toBe(2)
    expect((await emulator.messages('projects/harness/topics/paused', 1)).map((m) => m.data.toString())).toEqual(['during'])
  }, 30_000)

  test('refuses, as Pub/Sub does, a message over 10 MB (data, attributes, ordering key) and a request over 10 MiB', async () => {
    const INVALID_ARGUMENT = 3
    const [topic] = await pubsub.createTopic('limits')
    // The raw client: the library's publisher would batch and split on its own.
    const client = new v1.PublisherClient((await pubsub.getClientConfig()) as ConstructorParameters<typeof v1.PublisherClient>[0])
    const publish = (messages: { data: Buffer; attributes?: Record<string, string>; orderingKey?: string }[]) =>
      client.publish({ topic: topic.name, messages }, { retry: null, timeout: 30_000 })
    try {
      const attributes = { eventId: 'x'.repeat(20) }
      const orderingKey = 'k'.repeat(36)
      const atLimit = 10_000_000 - 'eventId'.length - 20 - 36
      expect((await publish([{ data: Buffer.alloc(atLimit, 97), attributes, orderingKey }]))[0].messageIds).toHaveLength(1)
      const overMessage = await errorOf(publish([{ data: Buffer.alloc(atLimit + 1, 97), attributes, orderingKey }]))
      expect(overMessage.code).toBe(INVALID_ARGUMENT)
      // Eleven messages of 1,000,000 bytes: each is allowed, their request of 11 MB (over 10 MiB) is not.
      const overRequest = await errorOf(publish(Array.from({ length: 11 }, () => ({ data: Buffer.alloc(1_000_000, 98) }))))
      expect(overRequest.code).toBe(INVALID_ARGUMENT)
      expect((await publish(Array.from({ length: 10 }, () => ({ data: Buffer.alloc(1_000_000, 98) }))))[0].messageIds).toHaveLength(10)
      expect(await emulator.count('limits')).toBe(11)
    } finally {
      await client.close()
    }
  }, 60_000)

  test('restart() keeps the port but loses every topic and message', async () => {
    await pubsub.createTopic('lost')
    await pubsub.topic('lost').publishMessage({ data: Buffer.from('x') })
    expect(await emulator.count('lost')).toBe(1)
    const host = emulator.host
    await emulator.restart()
    expect(emulator.host).toBe(host)
    expect(await emulator.count('lost')).toBe(0)
    const [exists] = await pubsub.topic('lost').exists()
    expect(exists).toBe(false)
  }, 30_000)
})
