// `lastSnapshot` in /info against a real MongoDB-protocol server: the newest start-job run, without its
// example task ids, read at most every 30 s (a fake clock says when), and never held up by a frozen server.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type Db, MongoClient } from 'mongodb'
import { LAST_SNAPSHOT_MAX_AGE_MS, createLastSnapshot } from '../../src/http/last-snapshot.ts'
import { type FerretDb, startFerretDb } from '../support/ferretdb.ts'

let mongo: FerretDb
let client: MongoClient
let db: Db

beforeAll(async () => {
  mongo = await startFerretDb()
  client = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 30_000 })
  db = client.db('last_snapshot')
}, 60_000)
afterAll(async () => {
  mongo?.thaw()
  await client?.close(true)
  await mongo?.close()
}, 60_000)

const record = (id: string, startedAt: Date, fields: Record<string, unknown>) =>
  db.collection('snapshots').insertOne({ _id: id as any, startedAt, workspaces: 2, tasks: 5, ...fields })

test('lastSnapshot is the newest run, read at most every 30 s, without task ids; a frozen MongoDB answers with the value read last', async () => {
  let now = 1_000_000
  const lastSnapshot = createLastSnapshot(db, () => now)
  expect(await lastSnapshot()).toBeNull()

  const finishedAt = new Date('2026-12-07T02:00:41.300Z')
  await record('run-1', new Date('2026-12-07T02:00:00Z'), {
    finishedAt, outcome: 'completed', drift: { missing: 1, extra: 0, stale: 2, examples: { missing: ['a-task-id'], extra: [], stale: ['b', 'c'] } },
  })
  now += LAST_SNAPSHOT_MAX_AGE_MS - 1
  expect(await lastSnapshot()).toBeNull()
  now += 1
  const completed = { snapshotId: 'run-1', outcome: 'completed', startedAt: '2026-12-07T02:00:00.000Z', finishedAt: finishedAt.toISOString(), drift: { missing: 1, extra: 0, stale: 2 } }
  expect(await lastSnapshot()).toEqual(completed)

  // A newer run under way, and an older one written late: the newest by startedAt wins.
  await record('run-2', new Date('2026-12-08T02:00:00Z'), { finishedAt: null, outcome: 'running', drift: null })
  await record('run-0', new Date('2026-12-06T02:00:00Z'), { finishedAt, outcome: 'failed', drift: null })
  now += LAST_SNAPSHOT_MAX_AGE_MS / 2
  expect(await lastSnapshot()).toEqual(completed)
  now += LAST_SNAPSHOT_MAX_AGE_MS / 2
  const running = { snapshotId: 'run-2', outcome: 'running', startedAt: '2026-12-08T02:00:00.000Z', finishedAt: null, drift: null }
  expect(await lastSnapshot()).toEqual(running)

  mongo.freeze()
  now += LAST_SNAPSHOT_MAX_AGE_MS
  const asked = performance.now()
  expect(await lastSnapshot()).toEqual(running)
  expect(performance.now() - asked).toBeLessThan(2_000)
  mongo.thaw()
}, 60_000)
