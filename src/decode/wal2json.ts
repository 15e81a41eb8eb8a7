// Decodes one wal2json format-version 2 message (the body of one XLogData) into a DecodedMessage.
// Expects the options format-version 2, include-xids, include-timestamp, include-lsn, include-transaction and
// include-type-oids (type names may be left out: include-types 0), without pretty-print, and PostgreSQL's
// DateStyle ISO.
// Guarantees: numbers stay exact (int8 beyond 2^53 as bigint, numeric as its decimal text); values of types it
// does not know pass through as wal2json gave them; anything malformed throws instead of flowing on.

import { isUtf8 } from 'node:buffer'
import { parseLsn, type Lsn } from '../replication/lsn.ts'
import type {
  Begin,
  ColumnValue,
  Commit,
  DecodedMessage,
  Delete,
  Insert,
  LogicalMessage,
  Row,
  TableColumns,
  Truncate,
  Update,
} from './types.ts'

// Type oids, named as in pg_type.
const BOOLOID = 16
const INT8OID = 20
const INT2OID = 21
const INT4OID = 23
const TEXTOID = 25
const OIDOID = 26
const JSONOID = 114
const FLOAT4OID = 700
const FLOAT8OID = 701
const TIMESTAMPOID = 1114
const TIMESTAMPTZOID = 1184
const NUMERICOID = 1700
const JSONBOID = 3802
// Text, varchar, bpchar, name, uuid, date and every other type not listed here keep wal2json's string.

/** Array type oid → element type oid. */
const ARRAY_ELEMENT = new Map<number, number>([
  [199, JSONOID], // _json
  [1000, BOOLOID], // _bool
  [1003, 19], // _name
  [1005, INT2OID], // _int2
  [1007, INT4OID], // _int4
  [1009, TEXTOID], // _text
  [1014, 1042], // _bpchar
  [1015, 1043], // _varchar
  [1016, INT8OID], // _int8
  [1021, FLOAT4OID], // _float4
  [1022, FLOAT8OID], // _float8
  [1028, OIDOID], // _oid
  [1115, TIMESTAMPOID], // _timestamp
  [1182, 1082], // _date
  [1185, TIMESTAMPTZOID], // _timestamptz
  [1231, NUMERICOID], // _numeric
  [2951, 2950], // _uuid
  [3807, JSONBOID], // _jsonb
])

/** One column as wal2json writes it: {"name":…,"type":…,"typeoid":…,"value":…}. */
type Wal2jsonColumn = { name: string; type: string; typeoid: number; value: unknown }

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
 */
export function decodeWal2json(payload: Uint8Array | string, columns: TableColumns, position: Lsn | null = null): DecodedMessage {
  const text = typeof payload === 'string' ? payload : decodeUtf8(payload)
  let message = parseJson(text)
  if ((mayBeRounded(message.columns) || mayBeRounded(message.identity)) && !restoreExactNumbers(message, text))
    message = parseKeepingNumberText(text)

  switch (message.action) {
    case 'B': return decodeBegin(message)
    case 'C': return decodeCommit(message, position)
    case 'I': return decodeInsert(message, position)
    case 'U': return decodeUpdate(message, columns, position)
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

function decodeUpdate(message: Wal2jsonMessage, columns: TableColumns, position: Lsn | null): Update {
  const { schema, table } = tableRef(message)
  const row = decodeRow(message, 'columns')
  return {
    kind: 'update',
    schema,
    table,
    lsn: position ?? lsn(message, 'lsn'),
    row,
    identity: message.identity === undefined ? null : decodeRow(message, 'identity'),
    unchangedToast: unchangedToast(row, columns.get(tableKey(schema, table))),
  }
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

// An UPDATE leaves out an unchanged TOASTed value that PostgreSQL did not log again: it is unknown, not null.
function unchangedToast(row: Row, known: { name: string }[] | undefined): string[] {
  const absent: string[] = []
  if (known !== undefined) for (const column of known) if (!Object.hasOwn(row, column.name)) absent.push(column.name)
  return absent
}

function decodeRow(message: Wal2jsonMessage, key: 'columns' | 'identity'): Row {
  const columns = message[key]
  if (!Array.isArray(columns)) missing(message, key)
  const row: Row = {}
  let name: unknown
  try {
    for (const column of columns) {
      name = column?.name
      if (typeof name !== 'string' || typeof column.typeoid !== 'number')
        throw new Error('a column needs "name" and "typeoid" (is include-type-oids on?)')
      const value = decodeValue(column.typeoid, column.value)
      if (name === '__proto__') Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true })
      else row[name] = value
    }
  } catch (error) {
    const where = `${message.schema}.${message.table}`
    throw new Error(`wal2json: ${where} ${key} ${JSON.stringify(name)}: ${(error as Error).message}`, { cause: error })
  }
  return row
}

/**
 * A value as wal2json writes it (JSON number, boolean or string), or a column's text output, decoded by type.
 * The initial load reads rows as text through this too, so loaded and streamed rows look alike.
 */
export function decodeValue(typeOid: number, value: unknown): ColumnValue {
  if (value === null) return null
  switch (typeOid) {
    case BOOLOID: return typeof value === 'string' ? value === 't' : (value as boolean)
    case INT2OID:
    case INT4OID:
    case OIDOID:
    case FLOAT4OID:
    case FLOAT8OID: return typeof value === 'string' ? Number(value) : (value as number)
    case INT8OID: return typeof value === 'string' ? int8FromText(value) : (value as number)
    case NUMERICOID: return String(value)
    case TIMESTAMPOID:
    case TIMESTAMPTZOID: return timestampToIso(value as string)
    case JSONOID:
    case JSONBOID: return parseJsonValue(value as string)
  }
  const elementOid = ARRAY_ELEMENT.get(typeOid)
  return elementOid !== undefined && typeof value === 'string' ? parseArrayLiteral(value, elementOid) : (value as ColumnValue)
}

/** int8 text: a number when JS holds it exactly, else a bigint. */
export function int8FromText(text: string): number | bigint {
  const number = Number(text)
  return Number.isSafeInteger(number) ? number : BigInt(text)
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

// Timestamps. PostgreSQL's ISO output: "2026-11-28 02:01:09.26298+00"; the zone may read "+05:30", "-03" or
// "+05:30:15"; years past 9999 take more digits and era dates end in " BC".
const PG_TIMESTAMP = /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?$/
const UTC_ZONE = '+00'
const SECONDS_END = 19 // "YYYY-MM-DD HH:MM:SS".length
const MILLISECONDS_END = 23 // … ".fff"
const MAX_DATE_MS = 8.64e15

/**
 * timestamptz or timestamp text → ISO-8601 UTC with milliseconds (`2026-11-28T02:01:09.262Z`); microseconds are
 * truncated, as a JS Date holds milliseconds. A timestamp without time zone is read as UTC: the output keeps its
 * wall-clock digits, whatever the zone this process runs in. 'infinity' and '-infinity' stay as they are, and so does
 * a time too far out for a JS Date (PostgreSQL reaches 294276 AD, a Date 275760 AD).
 */
export function timestampToIso(text: string): string {
  const end = text.endsWith(UTC_ZONE) ? text.length - UTC_ZONE.length : text.length
  if (isPlainUtc(text, end)) {
    // Already UTC with a four-digit year: only the separator, the fraction's length and the zone change.
    const date = text.slice(0, 10)
    if (end >= MILLISECONDS_END) return `${date}T${text.slice(11, MILLISECONDS_END)}Z`
    const fraction = end === SECONDS_END ? '.' : text.slice(SECONDS_END, end)
    return `${date}T${text.slice(11, SECONDS_END)}${fraction}${'000'.slice(fraction.length - 1)}Z`
  }
  const match = PG_TIMESTAMP.exec(text)
  if (match === null) {
    if (text === 'infinity' || text === '-infinity') return text
    throw new Error(`unexpected timestamp ${JSON.stringify(text)} (is DateStyle ISO?)`)
  }
  const [, year, month, day, hour, minute, second, fraction = '', sign, zoneHours, zoneMinutes, zoneSeconds, bc] = match
  const date = new Date(Date.UTC(2000, Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second),
    Number((fraction + '00').slice(0, 3))))
  // setUTCFullYear, since Date.UTC reads years 0 to 99 as 1900 to 1999; 1 BC is year 0.
  date.setUTCFullYear(bc === undefined ? Number(year) : 1 - Number(year))
  const zone = sign === undefined ? 0 : (sign === '-' ? -1 : 1) *
    (Number(zoneHours) * 3600 + Number(zoneMinutes ?? 0) * 60 + Number(zoneSeconds ?? 0)) * 1000
  const time = date.getTime() - zone
  return Math.abs(time) <= MAX_DATE_MS ? new Date(time).toISOString() : text
}

/** "YYYY-MM-DD HH:MM:SS", then nothing or a fraction of 1 to 6 digits, up to `end`. */
function isPlainUtc(text: string, end: number): boolean {
  if (end < SECONDS_END || end > SECONDS_END + 7) return false
  if (text.charCodeAt(4) !== 45 || text.charCodeAt(10) !== 32) return false // '-', ' '
  if (end === SECONDS_END) return true
  if (text.charCodeAt(SECONDS_END) !== 46 || end === SECONDS_END + 1) return false // '.'
  for (let i = SECONDS_END + 1; i < end; i++) {
    const c = text.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  return true
}

// json and jsonb. jsonb stores numbers as numeric, so a document may hold integers a double cannot: those beyond
// 2^53 come out as their exact decimal string. Every other number is a JS number, as any JSON reader would give it.
const LONG_DIGIT_RUN = /\d{16}/
const INTEGER = /^-?\d+$/

export function parseJsonValue(text: string): ColumnValue {
  try {
    return LONG_DIGIT_RUN.test(text) ? JSON.parse(text, keepBigIntegers) : JSON.parse(text)
  } catch (error) {
    throw new Error(`invalid JSON value: ${(error as Error).message}`)
  }
}

function keepBigIntegers(_key: string, value: unknown, context?: { source?: string }): unknown {
  const source = context?.source
  return typeof value === 'number' && !Number.isSafeInteger(value) && source !== undefined && INTEGER.test(source)
    ? source
    : value
}

// Array literals: `{a,"b c",NULL}`, `{{1,2},{3,4}}`, `[0:1]={1,2}`. Quoted elements escape `"` and `\` with a
// backslash; an unquoted NULL is SQL NULL, a quoted "NULL" the string. The element delimiter is ',' (all but box).
const OPEN_BRACE = 123
const CLOSE_BRACE = 125
const OPEN_BRACKET = 91
const QUOTE = 34
const BACKSLASH = 92
const COMMA = 44

type ArrayCursor = { text: string; at: number; elementOid: number }

/** An array literal → nested JS arrays, each element decoded as a value of `elementOid` (text by default). */
export function parseArrayLiteral(text: string, elementOid: number = TEXTOID): ColumnValue[] {
  // Explicit bounds ("[0:1]=") say where indexes start; a JS array starts at 0 regardless.
  const cursor = { text, at: text.charCodeAt(0) === OPEN_BRACKET ? text.indexOf('=') + 1 : 0, elementOid }
  const result = arrayLevel(cursor)
  if (cursor.at !== text.length) malformedArray(cursor)
  return result
}

function arrayLevel(cursor: ArrayCursor): ColumnValue[] {
  const { text, elementOid } = cursor
  if (text.charCodeAt(cursor.at) !== OPEN_BRACE) malformedArray(cursor)
  const items: ColumnValue[] = []
  if (text.charCodeAt(++cursor.at) === CLOSE_BRACE) {
    cursor.at++
    return items
  }
  for (;;) {
    const c = text.charCodeAt(cursor.at)
    if (c === OPEN_BRACE) items.push(arrayLevel(cursor))
    else if (c === QUOTE) items.push(decodeValue(elementOid, quotedElement(cursor)))
    else {
      const element = unquotedElement(cursor)
      items.push(element === 'NULL' ? null : decodeValue(elementOid, element))
    }
    const delimiter = text.charCodeAt(cursor.at)
    if (delimiter !== COMMA && delimiter !== CLOSE_BRACE) malformedArray(cursor)
    cursor.at++
    if (delimiter === CLOSE_BRACE) return items
  }
}

function quotedElement(cursor: ArrayCursor): string {
  const text = cursor.text
  let at = cursor.at + 1
  let start = at
  let out = ''
  for (;;) {
    const c = text.charCodeAt(at)
    if (c === QUOTE) break
    if (c === BACKSLASH) {
      out += text.slice(start, at)
      start = at + 1 // the escaped character opens the next run
      at += 2
    } else if (Number.isNaN(c)) {
      cursor.at = at
      malformedArray(cursor)
    } else at++
  }
  cursor.at = at + 1
  return out + text.slice(start, at)
}

function unquotedElement(cursor: ArrayCursor): string {
  const { text, at: start } = cursor
  let at = start
  for (let c = text.charCodeAt(at); c !== COMMA && c !== CLOSE_BRACE; c = text.charCodeAt(++at)) {
    if (Number.isNaN(c) || c === OPEN_BRACE || c === QUOTE) {
      cursor.at = at
      malformedArray(cursor)
    }
  }
  if (at === start) malformedArray(cursor)
  cursor.at = at
  return text.slice(start, at)
}

function malformedArray({ text, at }: ArrayCursor): never {
  throw new Error(`malformed array literal at position ${at} near ${JSON.stringify(text.slice(Math.max(0, at - 10), at + 10))}`)
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
