// The tracked tables as the catalog describes them: their columns in order, with type oids.
// The decoder needs them to tell an unchanged TOAST value (a column the WAL left out) from a column dropped; the
// source reads them at each session's start and again whenever an UPDATE's columns disagree with them.

import type postgres from 'postgres'
import type { TableColumns } from '../decode/types.ts'

export class MissingTableError extends Error {
  override name = 'MissingTableError'
}

export async function describeTables(sql: postgres.Sql, schema: string, tables: string[]): Promise<TableColumns> {
  const rows = await sql`
    select c.relname as table, a.attname as name, a.atttypid::int as type_oid, format_type(a.atttypid, a.atttypmod) as type_name,
      a.attstorage <> 'p' as toastable
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${schema} and c.relname = any(${tables}) and c.relkind in ('r', 'p')
      and a.attnum > 0 and not a.attisdropped
    order by c.relname, a.attnum`
  const columns: TableColumns = new Map()
  for (const row of rows) {
    const key = `${schema}.${row.table}`
    const list = columns.get(key) ?? []
    list.push({ name: row.name, typeOid: row.type_oid, typeName: row.type_name, toastable: row.toastable })
    columns.set(key, list)
  }
  const missing = tables.filter((table) => !columns.has(`${schema}.${table}`))
  if (missing.length)
    throw new MissingTableError(`table ${missing.map((table) => `${schema}.${table}`).join(', ')} not found in the source database`)
  return columns
}
