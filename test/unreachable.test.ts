// A failed start-up query to PostgreSQL says what it was: an SQL error the server answered, or a server not reached.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import postgres from 'postgres'
import { QueryRefused, Unreachable, postgresStartupError } from '../src/unreachable.ts'
import { freePort } from './support/ports.ts'
import { type PostgresServer, startPostgres } from './support/postgres.ts'

let pg: PostgresServer

beforeAll(async () => {
  pg = await startPostgres()
}, 120_000)
afterAll(async () => {
  await pg?.stop()
}, 120_000)

const failure = (work: Promise<unknown>) => work.then(() => Promise.reject(new Error('no failure')), (error) => error)

test('a function the server lacks is an SQL error, not a server out of reach', async () => {
  // What PostgreSQL 12 answers for pg_current_snapshot(), which came with 13.
  const error = await failure(pg.sql`select no_such_snapshot_function()`)
  const said = postgresStartupError('postgresql://u@h:5432/d', 'reading the columns', error)
  expect(said).toBeInstanceOf(QueryRefused)
  expect(said.message).toBe('PostgreSQL at postgresql://u@h:5432/d refused a query (reading the columns): function no_such_snapshot_function() does not exist [42883]')
})

test('a closed port or an unknown database is a server out of reach', async () => {
  const port = await freePort()
  const closed = postgres({ ...pg.options, port, max: 1, connect_timeout: 5 })
  const noDatabase = postgres({ ...pg.options, database: 'no_such_database', max: 1 })
  try {
    for (const error of [await failure(closed`select 1`), await failure(noDatabase`select 1`)])
      expect(postgresStartupError('a', 'b', error)).toBeInstanceOf(Unreachable)
  } finally {
    await Promise.all([closed.end(), noDatabase.end()])
  }
})
