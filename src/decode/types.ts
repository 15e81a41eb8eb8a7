// The data that flows out of the decoder: one wal2json v2 message, typed.
// Column names stay as PostgreSQL spells them (snake_case); the events layer renames them.

import type { Lsn } from '../replication/lsn.ts'

/**
 * A decoded column value.
 * integers within 2^53 and floats: number; int8 beyond 2^53: bigint; numeric: string (exact decimal text);
 * boolean: boolean; uuid, text and others: string; timestamptz/timestamp: ISO-8601 string (UTC for timestamptz);
 * json/jsonb: the parsed value; arrays: arrays of decoded elements; SQL NULL: null.
 */
export type ColumnValue =
  | null
  | string
  | number
  | bigint
  | boolean
  | ColumnValue[]
  | { [key: string]: unknown }

/**
 * The keys of a row whose values are timestamps (ISO-8601 strings): the type travels with the row, so that each
 * sink stores the row as its own columns are typed, whatever migrations ran meanwhile. Keyed by a symbol, so
 * JSON, BSON and key iteration leave it out; a row without timestamps has none.
 */
export const TIMESTAMPS = Symbol('timestamps')

export type Row = Record<string, ColumnValue> & { [TIMESTAMPS]?: string[] }

export type TableRef = { schema: string; table: string }

/** Transaction frame. `commitLsn` is the end of the commit record: the position the slot confirms. */
export type Begin = { kind: 'begin'; xid: number; commitLsn: Lsn; commitTime: string }
export type Commit = { kind: 'commit'; xid: number; commitLsn: Lsn; commitTime: string }

export type Insert = TableRef & { kind: 'insert'; lsn: Lsn; row: Row }
/**
 * `row` holds every column the WAL carried. Columns named in `unchangedToast` were not re-logged
 * (an unchanged TOASTed value): their value is unknown here, never invented.
 * `identity` is the old key (or the whole old row under REPLICA IDENTITY FULL), null when the key did not change.
 * `columnsDiffer`: the row's columns disagree with the catalog's list the decoder was given, which may be stale
 * (a migration since it was read): `unchangedToast` may name dropped columns, and the update must be decoded again
 * with a list read after it (the source does so before handing it out).
 */
export type Update = TableRef & { kind: 'update'; lsn: Lsn; row: Row; identity: Row | null; unchangedToast: string[]; columnsDiffer?: true }
/** `identity` is the key of the deleted row, or the whole old row under REPLICA IDENTITY FULL. */
export type Delete = TableRef & { kind: 'delete'; lsn: Lsn; identity: Row }
export type Truncate = TableRef & { kind: 'truncate'; lsn: Lsn }

export type RowChange = Insert | Update | Delete | Truncate

/** A `pg_logical_emit_message` (our heartbeat among them). */
export type LogicalMessage = { kind: 'message'; lsn: Lsn; transactional: boolean; prefix: string; content: string }

export type DecodedMessage = Begin | Commit | RowChange | LogicalMessage

/**
 * What the catalog says of a tracked table: its columns in order, with their types. `toastable` is false for
 * columns stored plain (fixed-width types): those are never left out of an UPDATE as unchanged TOAST values.
 * `attnum` is the column's identity (a column dropped and added again gets a new one; a rename or a new type
 * keeps it); `xmin` the transaction that last wrote its catalog row (added, renamed or retyped it).
 */
export type ColumnInfo = { name: string; typeOid: number; typeName: string; toastable: boolean; attnum?: number; xmin?: number }

/**
 * Of a list read after an update's transaction committed: whether `column` existed when the update was made,
 * `maxPosition` being the highest column position (attnum) the update's row carries.
 */
export type ExistedAtChange = (column: ColumnInfo, maxPosition: number) => boolean
export type TableColumns = Map<string /* "schema.table" */, ColumnInfo[]>
