// The tracked tables as the catalog describes them: their columns in order, with type oids, and which
// transactions the reading already saw.
// The decoder needs the columns to tell an unchanged TOAST value (a column the WAL left out) from a column dropped.
// A list is exact for a change whose transaction committed before the list was read: a DDL that changed the table
// before the change did either committed earlier (it held the table's lock until it was visible to all) or is part
// of the same transaction. So each reading keeps its MVCC snapshot, and `covers(xid)` says whether a transaction's
// changes are as old as the list or older; only a change no reading covers yet sends the source back to the catalog.
// A list read after a change may also hold what came after it (a later migration): each column carries its identity
// (attnum) and the transaction that last wrote its catalog row, so `existedAt` tells a column that existed at the
// change from one added, or dropped and added again, since; never by its name.

import type postgres from 'postgres'
import type { ExistedAtChange, TableColumns } from '../decode/types.ts'

export class MissingTableError extends Error {
  override name = 'MissingTableError'
}

export type CatalogReading = {
  columns: TableColumns
  /** The transaction (32-bit xid, as wal2json gives it) had committed when the columns were read. */
  covers(xid: number): boolean
  /**
   * Of an update of a transaction this reading covers: whether the column existed when the update was made (see
   * `existedAtChange`). Not proven means no: a column that did not exist is never taken for an unchanged value.
   */
  existedAt: ExistedAtChange
}

/** Before the first reading: covers nothing, so every difference is checked. */
export const NO_READING: CatalogReading = { columns: new Map(), covers: () => false, existedAt: () => false }

/** `slot`, when given, is the slot being decoded: its catalog_xmin dates the columns older than every change it sends. */
export async function describeTables(sql: postgres.Sql, schema: string, tables: string[], slot = ''): Promise<CatalogReading> {
  // One statement: txid_current_snapshot() is the snapshot the catalog rows were read with (the spelling PostgreSQL 12
  // has; 13 renamed it pg_current_snapshot(), same text form, and kept the old name).
  const rows = await sql`
    select c.relname as table, a.attname as name, a.atttypid::int as type_oid, format_type(a.atttypid, a.atttypmod) as type_name,
      a.attstorage <> 'p' as toastable, a.attnum::int as attnum, a.xmin::text::bigint as xmin, txid_current_snapshot()::text as snapshot,
      (select s.catalog_xmin::text::bigint from pg_replication_slots s where s.slot_name = ${slot}) as catalog_xmin
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
    list.push({ name: row.name, typeOid: row.type_oid, typeName: row.type_name, toastable: row.toastable, attnum: row.attnum, xmin: Number(row.xmin) })
    columns.set(key, list)
  }
  const missing = tables.filter((table) => !columns.has(`${schema}.${table}`))
  if (missing.length)
    throw new MissingTableError(`table ${missing.map((table) => `${schema}.${table}`).join(', ')} not found in the source database`)
  const catalogXmin = rows[0]!.catalog_xmin
  return { columns, covers: snapshotCovers(rows[0]!.snapshot), existedAt: existedAtChange(catalogXmin === null ? null : Number(catalogXmin)) }
}

// Transaction ids below this are PostgreSQL's own (bootstrap, frozen): older than anything decoded.
const FIRST_NORMAL_XID = 3

/**
 * Whether a column (a live one, as a reading after the change lists it) existed when an update was made, by its
 * identity: its attnum is at most the update's highest position (attnums only grow, and a live column was never
 * dropped), or its catalog row was last written before the slot's catalog_xmin (that transaction ended before the
 * slot's restart point, so before every change the slot sends) or frozen. A column added after the update, or
 * dropped and added again, is neither. A DDL and an update of the same table never overlap (the DDL holds the table's
 * lock), so "written before the update committed" means "before the update was made".
 */
export function existedAtChange(catalogXmin: number | null): ExistedAtChange {
  return (column, maxPosition) => {
    if (column.attnum !== undefined && column.attnum <= maxPosition) return true
    if (column.xmin === undefined) return false
    if (column.xmin < FIRST_NORMAL_XID) return true
    return catalogXmin !== null && xidPrecedes(column.xmin, catalogXmin)
  }
}

/** 32-bit transaction id order, as PostgreSQL's TransactionIdPrecedes: modulo 2^32, within 2^31 of each other. */
export function xidPrecedes(a: number, b: number): boolean {
  return ((a - b) | 0) < 0
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
