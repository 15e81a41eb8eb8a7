// The initial load's pages end at a byte bound as well as at a row count (docs/configuration.md, "Memory"):
// a page is read through a cursor a few rows at a time, and stops once its rows weigh the bound, so that
// 1,000 rows of 1 MB are never held at once. The cursor closed early leaves the transaction usable.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { readPage } from '../src/initial-load.ts'
import { type PostgresServer, startPostgres } from './support/postgres.ts'

const ROW_BYTES = 200_000
const ROWS = 50

let pg: PostgresServer

beforeAll(async () => {
  pg = await startPostgres()
  await pg.sql`create table large_rows (id int primary key, body text)`
  await pg.sql`insert into large_rows select g, repeat(chr(97 + g % 26), ${ROW_BYTES}) from generate_series(1, ${ROWS}) g`
}, 120_000)
afterAll(async () => {
  await pg?.stop()
}, 120_000)

test('a page stops at the fetch that reaches its byte bound, and the transaction reads on', async () => {
  await pg.sql.begin(async (transaction) => {
    const select = () => transaction.unsafe('select id::text as key, t.* from large_rows t order by id limit 1000')
    // 1 MB at 4 rows a fetch: the second fetch crosses it.
    const bounded = await readPage(select(), 4, 1_000_000)
    expect(bounded.rows.map((row) => row[0]!.toString())).toEqual(['1', '2', '3', '4', '5', '6', '7', '8'])
    expect(bounded.columns.map((column) => column.name)).toEqual(['key', 'id', 'body'])
    expect(bounded.rows.every((row) => row[2]!.length === ROW_BYTES)).toBe(true)
    const whole = await readPage(select(), 16, Number.MAX_SAFE_INTEGER)
    expect(whole.rows).toHaveLength(ROWS)
    const [{ count }] = await transaction<[{ count: number }]>`select count(*)::int as count from large_rows`
    expect(count).toBe(ROWS)
  })
}, 60_000)
