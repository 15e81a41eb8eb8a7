// Column values by type: wal2json's JSON values, and PostgreSQL's text output (what the initial load reads),
// decoded by type oid into the ColumnValues of types.ts. The type oid travels with every value, so a column
// retyped by a migration is decoded with its new type from its first change on.
// Guarantees: numbers stay exact (int8 beyond 2^53 as bigint, numeric as its decimal text); values of types it
// does not know pass through as given; anything malformed throws.

import type { ColumnValue } from './types.ts'

// Type oids, named as in pg_type.
const BOOLOID = 16
export const INT8OID = 20
const INT2OID = 21
const INT4OID = 23
const TEXTOID = 25
const OIDOID = 26
const JSONOID = 114
const FLOAT4OID = 700
const FLOAT8OID = 701
const TIMESTAMPOID = 1114
const TIMESTAMPTZOID = 1184
export const NUMERICOID = 1700
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

/** timestamptz or timestamp: decoded to ISO-8601 strings, which the MongoDB sink stores as BSON dates. */
export function isTimestampType(typeOid: number): boolean {
  return typeOid === TIMESTAMPTZOID || typeOid === TIMESTAMPOID
}

/** int8 text: a number when JS holds it exactly, else a bigint. */
export function int8FromText(text: string): number | bigint {
  const number = Number(text)
  return Number.isSafeInteger(number) ? number : BigInt(text)
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
