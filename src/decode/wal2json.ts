// Decodes one wal2json format-version 2 message (the body of one XLogData) into a DecodedMessage: the message's
// framing and fields here, its column values in values.ts.
// Expects the options format-version 2, include-xids, include-timestamp, include-lsn, include-transaction and
// include-type-oids (type names may be left out: include-types 0), without pretty-print, and PostgreSQL's
// DateStyle ISO.
// Guarantees: every row carries the types of its own columns (values by type oid, timestamps named in
// TIMESTAMPS), never those of a catalog read earlier; an UPDATE whose columns disagree with the catalog's is
// not guessed at but marked (`columnsDiffer`); anything malformed throws instead of flowing on.

import { isUtf8 } from 'node:buffer'
import { parseLsn, type Lsn } from '../replication/lsn.ts'
import {
  type Begin,
  type ColumnInfo,
  type Commit,
  type DecodedMessage,
  type ExistedAtChange,
  type Delete,
  type Insert,
  type LogicalMessage,
  type Row,
  TIMESTAMPS,
  type TableColumns,
  type Truncate,
  type Update,
} from './types.ts'
import { INT8OID, NUMERICOID, decodeValue, isTimestampType, timestampToIso } from './values.ts'


/** One column as wal2json writes it: {"name":…,"type":…,"typeoid":…,"value":…}. */
type Wal2jsonColumn = { name: string; type: string; typeoid: number; value: unknown; position?: number }

type Wal2jsonMessage = {
  action: string
  xid?: number | null
  timestamp?: string | null
  lsn?: string
  nextlsn?: string
  schema?: string
  table?: string
  columns?: Wal2jsonColumn[]
  identity?: Wal2jsonColumn[]
  transactional?: boolean
  prefix?: string
  content?: string
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * `position` is the XLogData's dataStart, when the message came from a stream: the change's own LSN, and for
 * a commit the end of its record. Taking it from the protocol header saves parsing it from the JSON.
 * `columnsRead` says when `columns` was read from the catalog: `before` the change was written, or maybe so (a
 * difference means the list may be stale: the UPDATE is marked `columnsDiffer`), or `after` it (the list is the table's schema from
 * then on, and a difference is the change's own: a column added since is not in it, one dropped since still is).
 */
export function decodeWal2json(
  payload: Uint8Array | string,
  columns: TableColumns,
  position: Lsn | null = null,
  columnsRead: 'before' | ExistedAtChange = 'before',
): DecodedMessage {
  const text = typeof payload === 'string' ? payload : decodeUtf8(payload)
  let message = parseJson(text)
  if ((mayBeRounded(message.columns) || mayBeRounded(message.identity)) && !restoreExactNumbers(message, text))
    message = parseKeepingNumberText(text)

  switch (message.action) {
    case 'B': return decodeBegin(message)
    case 'C': return decodeCommit(message, position)
    case 'I': return decodeInsert(message, position)
    case 'U': return decodeUpdate(message, columns, position, columnsRead)
    case 'D': return decodeDelete(message, position)
    case 'T': return decodeTruncate(message, position)
    case 'M': return decodeLogicalMessage(message, position)
    default: throw new Error(`wal2json: unknown action ${JSON.stringify(message.action)}`)
  }
}

// On B and C, `lsn` is the start of the commit record and `nextlsn` its end: the position the slot confirms.
function decodeBegin(message: Wal2jsonMessage): Begin {
  return { kind: 'begin', xid: xid(message), commitLsn: lsn(message, 'nextlsn'), commitTime: commitTime(message) }
}

function decodeCommit(message: Wal2jsonMessage, position: Lsn | null): Commit {
  return { kind: 'commit', xid: xid(message), commitLsn: position ?? lsn(message, 'nextlsn'), commitTime: commitTime(message) }
}

function decodeInsert(message: Wal2jsonMessage, position: Lsn | null): Insert {
  const { schema, table } = tableRef(message)
  return { kind: 'insert', schema, table, lsn: position ?? lsn(message, 'lsn'), row: decodeRow(message, 'columns') }
}

function decodeUpdate(message: Wal2jsonMessage, columns: TableColumns, position: Lsn | null, columnsRead: 'before' | ExistedAtChange): Update {
  const { schema, table } = tableRef(message)
  const row = decodeRow(message, 'columns')
  const known = columns.get(tableKey(schema, table))
  const absent = known === undefined ? [] : unchangedToast(row, message.columns!, known, columnsRead)
  const update: Update = {
    kind: 'update',
    schema,
    table,
    lsn: position ?? lsn(message, 'lsn'),
    row,
    identity: message.identity === undefined ? null : decodeRow(message, 'identity'),
    unchangedToast: absent,
  }
  if (columnsRead === 'before' && known !== undefined && (absent.length || known.length !== message.columns!.length)) update.columnsDiffer = true
  return update
}

// A fresh "schema.table" string would be built and hashed for every UPDATE; changes mostly come in runs on one table,
// so the last key is kept and its hash with it.
let lastKey = { schema: '', table: '', key: '.' }

function tableKey(schema: string, table: string): string {
  if (schema !== lastKey.schema || table !== lastKey.table) lastKey = { schema, table, key: `${schema}.${table}` }
  return lastKey.key
}

function decodeDelete(message: Wal2jsonMessage, position: Lsn | null): Delete {
  const { schema, table } = tableRef(message)
  return { kind: 'delete', schema, table, lsn: position ?? lsn(message, 'lsn'), identity: decodeRow(message, 'identity') }
}

function decodeTruncate(message: Wal2jsonMessage, position: Lsn | null): Truncate {
  const { schema, table } = tableRef(message)
  return { kind: 'truncate', schema, table, lsn: position ?? lsn(message, 'lsn') }
}

function decodeLogicalMessage(message: Wal2jsonMessage, position: Lsn | null): LogicalMessage {
  if (typeof message.transactional !== 'boolean') missing(message, 'transactional')
  return {
    kind: 'message',
    lsn: position ?? lsn(message, 'lsn'),
    transactional: message.transactional,
    prefix: stringField(message, 'prefix'),
    content: stringField(message, 'content'),
  }
}

// An UPDATE leaves out an unchanged TOASTed value that PostgreSQL did not log again: it is unknown, not null. With a
// list read `before` the change, every lacking column counts (the caller learns that the list differs). With one read
// after it, a lacking column counts only if it existed when the change was made, decided by its identity (attnum),
// never its name: one dropped and added again since, or added since, is left out; one retyped since still counts.
function unchangedToast(row: Row, columns: Wal2jsonColumn[], known: ColumnInfo[], columnsRead: 'before' | ExistedAtChange): string[] {
  const absent: string[] = []
  let maxPosition = -1
  for (const column of known) {
    if (Object.hasOwn(row, column.name)) continue
    if (columnsRead === 'before') absent.push(column.name)
    else if (columnsRead(column, maxPosition < 0 ? (maxPosition = highestPosition(columns)) : maxPosition)) absent.push(column.name)
  }
  return absent
}

/** wal2json lists a row's columns in attnum order: the last one's position is the highest (0 without positions). */
function highestPosition(columns: Wal2jsonColumn[]): number {
  return columns.at(-1)?.position ?? 0
}

function decodeRow(message: Wal2jsonMessage, key: 'columns' | 'identity'): Row {
  const columns = message[key]
  if (!Array.isArray(columns)) missing(message, key)
  const row: Row = {}
  let timestamps: string[] | undefined
  let name: unknown
  try {
    for (const column of columns) {
      name = column?.name
      if (typeof name !== 'string' || typeof column.typeoid !== 'number')
        throw new Error('a column needs "name" and "typeoid" (is include-type-oids on?)')
      const value = decodeValue(column.typeoid, column.value)
      if (isTimestampType(column.typeoid)) (timestamps ??= []).push(name)
      if (name === '__proto__') Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true })
      else row[name] = value
    }
  } catch (error) {
    const where = `${message.schema}.${message.table}`
    throw new Error(`wal2json: ${where} ${key} ${JSON.stringify(name)}: ${(error as Error).message}`, { cause: error })
  }
  if (timestamps) row[TIMESTAMPS] = timestamps
  return row
}

// Exactness. Plain JSON.parse reads every number as a double; only two kinds of column can lose anything by that:
// numeric (any value: even trailing zeros are its scale) and int8 beyond 2^53. When a message holds one, the exact
// text of those numbers is taken from the payload. Everything else takes the plain, fast parse alone.

function mayBeRounded(columns: Wal2jsonColumn[] | undefined): boolean {
  if (!Array.isArray(columns)) return false
  for (const column of columns) {
    const value = column?.value
    if (typeof value === 'number' && (column.typeoid === NUMERICOID || (column.typeoid === INT8OID && !Number.isSafeInteger(value))))
      return true
  }
  return false
}

// `"typeoid":1700,"value":` can only be structure, never string content: inside a JSON string every quote is escaped.
const EXACT_NUMBER = /"typeoid":(?:1700|20),"value":(-?\d[\d.eE+-]*)/g

/** Swaps the numbers of numeric and int8 columns for their text in the payload, in order; false if they don't pair up. */
function restoreExactNumbers(message: Wal2jsonMessage, text: string): boolean {
  const sources = text.matchAll(EXACT_NUMBER)
  for (const columns of [message.columns, message.identity]) {
    if (!Array.isArray(columns)) continue
    for (const column of columns) {
      if (typeof column.value !== 'number' || (column.typeoid !== NUMERICOID && column.typeoid !== INT8OID)) continue
      const source = sources.next().value?.[1]
      if (source === undefined || Number(source) !== column.value) return false
      column.value = source
    }
  }
  return sources.next().done === true
}

// Should wal2json's layout ever differ from the one our options produce, the reviver gets the exact text anyway, slowly.
function parseKeepingNumberText(text: string): Wal2jsonMessage {
  return JSON.parse(text, (key: string, value: unknown, context?: { source?: string }) =>
    key === 'value' && typeof value === 'number' ? (context?.source ?? value) : value)
}

function parseJson(text: string): Wal2jsonMessage {
  let message: unknown
  try {
    message = JSON.parse(text)
  } catch (error) {
    const position = syntaxErrorPosition(text)
    const near = JSON.stringify(text.slice(Math.max(0, position - 10), position + 10))
    throw new Error(`wal2json: malformed JSON at position ${position} near ${near}: ${(error as Error).message}`)
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message))
    throw new Error(`wal2json: expected a JSON object, got ${JSON.stringify(text.slice(0, 40))}`)
  return message as Wal2jsonMessage
}

// A Buffer (what the stream gives) is checked and decoded natively, about twice as fast as a fatal TextDecoder.
function decodeUtf8(payload: Uint8Array): string {
  if (Buffer.isBuffer(payload)) {
    if (isUtf8(payload)) return payload.toString('utf8')
  } else {
    try {
      return utf8.decode(payload)
    } catch {}
  }
  throw new Error(`wal2json: payload of ${payload.length} bytes is not valid UTF-8`)
}

// JavaScriptCore's SyntaxError names no position: walk the text once more to find where it stops being JSON.
const JSON_STRING = /"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y
const JSON_SCALAR = new RegExp(`${JSON_STRING.source}|-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][+-]?\\d+)?|true|false|null`, 'y')

function syntaxErrorPosition(text: string): number {
  let i = 0
  const space = () => { while (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r') i++ }
  const expect = (char: string) => { if (text[i] !== char) throw i; i++ }
  const token = (pattern: RegExp) => {
    pattern.lastIndex = i
    if (!pattern.test(text)) throw i
    i = pattern.lastIndex
  }
  const composite = (close: string, member: () => void) => {
    i++
    space()
    if (text[i] === close) {
      i++
      return
    }
    for (;;) {
      member()
      space()
      if (text[i] !== ',') return expect(close)
      i++
    }
  }
  const value = (): void => {
    space()
    if (text[i] === '{') return composite('}', () => { space(); token(JSON_STRING); space(); expect(':'); value() })
    if (text[i] === '[') return composite(']', value)
    token(JSON_SCALAR)
  }
  try {
    value()
    space()
    return i
  } catch (position) {
    return typeof position === 'number' ? position : i
  }
}

// Field access with a clear error when wal2json was started without the option that writes the field.

function missing(message: Wal2jsonMessage, key: string): never {
  throw new Error(`wal2json: ${message.action} message without a valid "${key}"`)
}

function stringField(message: Wal2jsonMessage, key: 'lsn' | 'nextlsn' | 'schema' | 'table' | 'prefix' | 'content'): string {
  const value = message[key]
  return typeof value === 'string' ? value : missing(message, key)
}

function lsn(message: Wal2jsonMessage, key: 'lsn' | 'nextlsn'): Lsn {
  const value = stringField(message, key)
  try {
    return parseLsn(value)
  } catch (error) {
    throw new Error(`wal2json: ${message.action} message: ${(error as Error).message}`)
  }
}

function xid(message: Wal2jsonMessage): number {
  return typeof message.xid === 'number' ? message.xid : missing(message, 'xid')
}

function commitTime(message: Wal2jsonMessage): string {
  const timestamp = message.timestamp
  if (typeof timestamp !== 'string') missing(message, 'timestamp')
  try {
    return timestampToIso(timestamp)
  } catch (error) {
    throw new Error(`wal2json: ${message.action} message: ${(error as Error).message}`)
  }
}

function tableRef(message: Wal2jsonMessage): { schema: string; table: string } {
  return { schema: stringField(message, 'schema'), table: stringField(message, 'table') }
}
