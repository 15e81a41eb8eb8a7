// The connector supports PostgreSQL 12 and newer (contract section 1): every function its SQL calls must exist in 12.
// The sources are scanned for SQL (tagged templates of a postgres.js `sql`, and `unsafe` texts), and each function
// called there is checked against PostgreSQL 12's (test/fixtures/postgres-12-functions.txt).

import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Glob } from 'bun'

const ROOT = join(import.meta.dir, '..')
const POSTGRES_12 = new Set(
  readFileSync(join(import.meta.dir, 'fixtures/postgres-12-functions.txt'), 'utf8')
    .split('\n')
    .filter((line) => line && !line.startsWith('#')),
)
// SQL syntax that takes parentheses without being a function.
const SYNTAX = new Set(['any', 'all', 'in', 'exists', 'values', 'cast', 'over', 'filter', 'as', 'and', 'or', 'not', 'on', 'using', 'from', 'where', 'select', 'limit', 'isolation'])

/** The SQL texts of a source file: `sql`-tagged templates (any tag ending in sql or Sql) and `unsafe(…)` arguments. */
function sqlTexts(source: string): string[] {
  const texts: string[] = []
  for (const match of source.matchAll(/(?:\b[sS]ql|\.sql)`((?:[^`\\]|\\.)*)`/g)) texts.push(match[1]!)
  for (const match of source.matchAll(/\.unsafe\(\s*(['`])((?:(?!\1)[^\\]|\\.)*)\1/g)) texts.push(match[2]!)
  return texts
}

/** The functions an SQL text calls: a name followed by a parenthesis, outside interpolations and literals. */
function calledFunctions(sql: string): string[] {
  const bare = sql.replace(/\$\{[^}]*\}/g, ' ').replace(/'(?:[^']|'')*'/g, "''")
  return [...bare.matchAll(/([a-z_][a-z0-9_]*)\s*\(/gi)].map((match) => match[1]!.toLowerCase()).filter((name) => !SYNTAX.has(name))
}

test('finds the functions in SQL as the sources write it', () => {
  const source = 'await sql`select pg_current_snapshot()::text, format_type(a.atttypid, ${x}) where id = any(${ids})`\n' +
    "replication.unsafe('IDENTIFY_SYSTEM'); tx.unsafe(`select count(*) from t where x in (1)`)"
  expect(sqlTexts(source).flatMap(calledFunctions)).toEqual(['pg_current_snapshot', 'format_type', 'count'])
})

test('every function the SQL of src/ calls exists in PostgreSQL 12', async () => {
  const used = new Map<string, string>()
  for await (const file of new Glob('src/**/*.ts').scan(ROOT))
    for (const sql of sqlTexts(readFileSync(join(ROOT, file), 'utf8'))) for (const name of calledFunctions(sql)) used.set(name, file)
  // The scan sees what it should: functions the sources are known to call.
  expect([...used.keys()]).toContain('txid_current_snapshot')
  expect([...used.keys()]).toContain('pg_logical_emit_message')
  const missing = [...used].filter(([name]) => !POSTGRES_12.has(name)).map(([name, file]) => `${name} (${file})`)
  expect(missing).toEqual([])
})
