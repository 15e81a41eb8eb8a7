// postgres.js 3.4.9 throws from a timer when a buffered write finds its socket already closed
// (porsager/postgres#1066, #1208): an exception nothing can catch, which ends the process. The connector
// meets exactly that when PostgreSQL restarts under it, so we carry the upstream guard as a patch
// (patches/postgres@3.4.9.patch). This is upstream's reproduction: a write on a connection whose backend
// was terminated must reject, not crash.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import postgres from 'postgres'
import { type PostgresServer, startPostgres } from '../support/postgres.ts'

let pg: PostgresServer
beforeAll(async () => {
  pg = await startPostgres()
}, 120_000)
afterAll(async () => {
  await pg?.stop()
}, 120_000)

test('a query on a connection whose backend is gone rejects with CONNECTION_CLOSED instead of throwing from a timer', async () => {
  const sql = postgres({ ...pg.options, max: 2, onnotice: () => {} })
  const uncaught: unknown[] = []
  const onUncaught = (error: unknown) => uncaught.push(error)
  process.on('uncaughtException', onUncaught)
  try {
    const reserved = await sql.reserve()
    const [{ pid }] = await reserved<[{ pid: number }]>`select pg_backend_pid() as pid`
    await pg.sql`select pg_terminate_backend(${pid})`
    const first = await reserved`select 1`.then(() => 'answered', (error) => error.code)
    const second = await reserved`select 1`.then(() => 'answered', (error) => error.code)
    await Bun.sleep(50)
    expect({ first, second, uncaught: uncaught.map(String) }).toEqual({ first: expect.any(String), second: 'CONNECTION_CLOSED', uncaught: [] })
    reserved.release()
  } finally {
    process.off('uncaughtException', onUncaught)
    await sql.end({ timeout: 1 })
  }
})
