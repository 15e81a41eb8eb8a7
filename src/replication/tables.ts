// The tracked tables as the catalog describes them: their columns in order, with type oids, and which
// transactions the reading already saw.
// The decoder needs the columns to tell an unchanged TOAST value (a column the WAL left out) from a column dropped.
// A list is exact for a change whose transaction committed before the list was read: a DDL that changed the table
// before the change did either committed earlier (it held the table's lock until it was visible to all) or is part
// of the same transaction. So each reading keeps its MVCC snapshot, and `covers(xid)` says whether a transaction's
// changes are as old as the list or older; only a change no reading covers yet sends the source back to the catalog.

import type postgres from 'postgres'
import type { TableColumns } from '../decode/types.ts'

export class MissingTableError extends Error {
  override name = 'MissingTableError'
}

export type CatalogReading = {
  columns: TableColumns
  /** The transaction (32-bit xid, as wal2json gives it) had committed when the columns were read. */
  covers(xid: number): boolean
}

/** Before the first reading: covers nothing, so every difference is checked. */
export const NO_READING: CatalogReading = { columns: new Map(), covers: () => false }

export async function describeTables(sql: postgres.Sql, schema: string, tables: string[]): Promise<CatalogReading> {
  // One statement: txid_current_snapshot() is the snapshot the catalog rows were read with (the spelling PostgreSQL 12
  // has; 13 renamed it pg_current_snapshot(), same text form, and kept the old name).
  const rows = await sql`
    select c.relname as table, a.attname as name, a.atttypid::int as type_oid, format_type(a.atttypid, a.atttypmod) as type_name,
      a.attstorage <> 'p' as toastable, txid_current_snapshot()::text as snapshot
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
  return { columns, covers: snapshotCovers(rows[0]!.snapshot) }
}

const XID_BITS = 32n
const XID_MASK = (1n << XID_BITS) - 1n

/**
 * Visibility in a txid_snapshot ("xmin:xmax:xip,…", 64-bit xids) of a committed transaction named by its 32-bit
 * xid. The xid is widened next to xmax: a transaction decoded now is within 2^31 of the server's next xid.
 */
export function snapshotCovers(snapshot: string): (xid: number) => boolean {
  const [xminText, xmaxText, xipText = ''] = snapshot.split(':')
  if (xminText === undefined || xmaxText === undefined) throw new Error(`unreadable txid_snapshot ${JSON.stringify(snapshot)}`)
  const xmin = BigInt(xminText)
  const xmax = BigInt(xmaxText)
  const inProgress = new Set(xipText ? xipText.split(',').map(BigInt) : [])
  const xmaxLow = Number(xmax & XID_MASK)
  return (xid) => {
    const full = xmax + BigInt((xid - xmaxLow) | 0)
    return full < xmin || (full < xmax && !inProgress.has(full))
  }
}
