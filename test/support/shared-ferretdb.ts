// A FerretDB and a client on it that a test file shares: started before its tests, stopped after them.

import { afterAll, beforeAll } from 'bun:test'
import { MongoClient } from 'mongodb'
import { type FerretDb, startFerretDb } from './ferretdb.ts'

const START_MS = 120_000

export function sharedFerretDb(): { ferret: FerretDb; client: MongoClient } {
  const shared = {} as { ferret: FerretDb; client: MongoClient }
  beforeAll(async () => {
    shared.ferret = await startFerretDb()
    shared.client = new MongoClient(shared.ferret.url)
  }, START_MS)
  afterAll(async () => {
    await shared.client?.close()
    await shared.ferret?.close()
  }, START_MS)
  return shared
}
