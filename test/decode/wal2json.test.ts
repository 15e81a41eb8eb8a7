// wal2json format-version 2 messages, as PostgreSQL 15 + wal2json 2.5 wrote them, decoded.

import { describe, expect, test } from 'bun:test'
import { existedAtChange } from '../../src/replication/tables.ts'
import { decodeWal2json } from '../../src/decode/wal2json.ts'
import { int8FromText, parseArrayLiteral, parseJsonValue, timestampToIso } from '../../src/decode/values.ts'
import { type ColumnInfo, type TableColumns, TIMESTAMPS } from '../../src/decode/types.ts'
import { parseLsn } from '../../src/replication/lsn.ts'

const TASKS: TableColumns = new Map([
  ['public.tasks', [
    { name: 'id', typeOid: 2950, typeName: 'uuid', toastable: false },
    { name: 'workspace_id', typeOid: 2950, typeName: 'uuid', toastable: false },
    { name: 'title', typeOid: 25, typeName: 'text', toastable: true },
    { name: 'status', typeOid: 25, typeName: 'text', toastable: true },
    { name: 'priority', typeOid: 23, typeName: 'integer', toastable: false },
    { name: 'assignee_id', typeOid: 2950, typeName: 'uuid', toastable: false },
    { name: 'due_at', typeOid: 1184, typeName: 'timestamp with time zone', toastable: false },
    { name: 'labels', typeOid: 1009, typeName: 'text[]', toastable: true },
    { name: 'description', typeOid: 25, typeName: 'text', toastable: true },
    { name: 'metadata', typeOid: 3802, typeName: 'jsonb', toastable: true },
    { name: 'created_at', typeOid: 1184, typeName: 'timestamp with time zone', toastable: false },
    { name: 'updated_at', typeOid: 1184, typeName: 'timestamp with time zone', toastable: false },
  ]],
])

const BEGIN = '{"action":"B","xid":728,"timestamp":"2026-11-28 02:01:09.264182+00","lsn":"0/192DFF8","nextlsn":"0/192E040"}'
const INSERT = '{"action":"I","xid":728,"timestamp":"2026-11-28 02:01:09.264182+00","lsn":"0/192DEF0","schema":"public","table":"workspaces","columns":[{"name":"id","type":"uuid","typeoid":2950,"value":"11111111-1111-1111-1111-111111111111"},{"name":"name","type":"text","typeoid":25,"value":"w1"},{"name":"created_at","type":"timestamp with time zone","typeoid":1184,"value":"2026-11-28 02:01:09.26298+00"},{"name":"updated_at","type":"timestamp with time zone","typeoid":1184,"value":"2026-11-28 02:01:09.26298+00"}]}'
const COMMIT = '{"action":"C","xid":728,"timestamp":"2026-11-28 02:01:09.264182+00","lsn":"0/192DFF8","nextlsn":"0/192E040"}'
const DELETE = '{"action":"D","xid":730,"timestamp":"2026-11-28 02:01:09.315326+00","lsn":"0/192E3A8","schema":"public","table":"tasks","identity":[{"name":"id","type":"uuid","typeoid":2950,"value":"c1e5e558-27e1-4e57-8bda-c9ae66b2b501"}]}'
const TRUNCATE = '{"action":"T","xid":731,"timestamp":"2026-11-28 02:01:09.329778+00","lsn":"0/192F2B8","schema":"public","table":"tasks"}'
const MESSAGE = '{"action":"M","xid":null,"timestamp":null,"lsn":"0/192F4F8","transactional":false,"prefix":"tc-heartbeat","content":"hello"}'
const UPDATE = String.raw`{"action":"U","xid":733,"timestamp":"2026-11-28 02:01:25.072949+00","lsn":"0/1959548","schema":"public","table":"tasks","columns":[{"name":"id","type":"uuid","typeoid":2950,"value":"22222222-2222-2222-2222-222222222222"},{"name":"workspace_id","type":"uuid","typeoid":2950,"value":"11111111-1111-1111-1111-111111111111"},{"name":"title","type":"text","typeoid":25,"value":"t1"},{"name":"status","type":"text","typeoid":25,"value":"done"},{"name":"priority","type":"integer","typeoid":23,"value":0},{"name":"assignee_id","type":"uuid","typeoid":2950,"value":null},{"name":"due_at","type":"timestamp with time zone","typeoid":1184,"value":"2026-01-01 08:00:00+00"},{"name":"labels","type":"text[]","typeoid":1009,"value":"{a,\"b c\",NULL}"},{"name":"metadata","type":"jsonb","typeoid":3802,"value":"{\"k\": [1, 2.5, {\"z\": null}]}"},{"name":"created_at","type":"timestamp with time zone","typeoid":1184,"value":"2026-11-28 02:01:25.036113+00"},{"name":"updated_at","type":"timestamp with time zone","typeoid":1184,"value":"2026-11-28 02:01:25.036113+00"}],"identity":[{"name":"id","type":"uuid","typeoid":2950,"value":"22222222-2222-2222-2222-222222222222"}]}`
const NUMBERS = '{"action":"I","xid":735,"timestamp":"2026-11-28 02:01:25.088993+00","lsn":"0/195D340","schema":"public","table":"other","columns":[{"name":"id","type":"bigint","typeoid":20,"value":9007199254740993},{"name":"n","type":"numeric","typeoid":1700,"value":12345678901234567890.123456789},{"name":"f","type":"double precision","typeoid":701,"value":1.5},{"name":"b","type":"boolean","typeoid":16,"value":true},{"name":"r","type":"real","typeoid":700,"value":null}]}'

const NONE: TableColumns = new Map()
/** A list read after the change, every column of which existed when the change was made. */
const EVERY_COLUMN_EXISTED = () => true

/** JSON text written into the payload as it is: numbers beyond what a JS number carries, or spelled a certain way. */
type Raw = { raw: string }
const raw = (text: string): Raw => ({ raw: text })

/** An INSERT into public.t with the given wal2json columns. */
function insertOf(...columns: { name: string; typeoid: number; value: unknown }[]): string {
  const json = (value: unknown) => (typeof value === 'object' && value !== null && 'raw' in value ? (value as Raw).raw : JSON.stringify(value))
  const written = columns.map(c => `{"name":${JSON.stringify(c.name)},"type":"x","typeoid":${c.typeoid},"value":${json(c.value)}}`)
  return `{"action":"I","xid":1,"timestamp":"2026-11-28 02:01:09+00","lsn":"0/10","schema":"public","table":"t","columns":[${written.join(',')}]}`
}

/** The payload, parsed, changed and written again (for messages whose numbers JSON.stringify keeps as they were). */
function edit(payload: string, change: (message: any) => void): string {
  const message = JSON.parse(payload)
  change(message)
  return JSON.stringify(message)
}

function rowOf(payload: string): Record<string, unknown> {
  const message = decodeWal2json(payload, NONE)
  if (message.kind !== 'insert') throw new Error(`expected an insert, got ${message.kind}`)
  return message.row
}

describe('transaction frame', () => {
  test('B carries the xid, the end of the commit record (nextlsn) and the commit time in UTC', () => {
    expect(decodeWal2json(BEGIN, NONE)).toEqual({
      kind: 'begin', xid: 728, commitLsn: parseLsn('0/192E040'), commitTime: '2026-11-28T02:01:09.264Z',
    })
  })

  test('C carries the same commit position as its B, not the start of the commit record', () => {
    const commit = decodeWal2json(COMMIT, NONE)
    expect(commit).toEqual({ kind: 'commit', xid: 728, commitLsn: 0x192e040n, commitTime: '2026-11-28T02:01:09.264Z' })
  })

  test('a payload arrives as bytes as well as text', () => {
    expect(decodeWal2json(new TextEncoder().encode(COMMIT), NONE)).toEqual(decodeWal2json(COMMIT, NONE))
  })
})

describe('row changes', () => {
  test('I decodes every column by type, with the change lsn, schema and table, and names its timestamps', () => {
    expect(decodeWal2json(INSERT, NONE)).toEqual({
      kind: 'insert',
      schema: 'public',
      table: 'workspaces',
      lsn: 0x192def0n,
      row: {
        id: '11111111-1111-1111-1111-111111111111',
        name: 'w1',
        created_at: '2026-11-28T02:01:09.262Z',
        updated_at: '2026-11-28T02:01:09.262Z',
        [TIMESTAMPS]: ['created_at', 'updated_at'],
      },
    })
  })

  test('U decodes the new row, the identity, and names the columns PostgreSQL left out as unchanged TOAST', () => {
    expect(decodeWal2json(UPDATE, TASKS, null, EVERY_COLUMN_EXISTED)).toEqual({
      kind: 'update',
      schema: 'public',
      table: 'tasks',
      lsn: 0x1959548n,
      row: {
        id: '22222222-2222-2222-2222-222222222222',
        workspace_id: '11111111-1111-1111-1111-111111111111',
        title: 't1',
        status: 'done',
        priority: 0,
        assignee_id: null,
        due_at: '2026-01-01T08:00:00.000Z',
        labels: ['a', 'b c', null],
        metadata: { k: [1, 2.5, { z: null }] },
        created_at: '2026-11-28T02:01:25.036Z',
        updated_at: '2026-11-28T02:01:25.036Z',
        [TIMESTAMPS]: ['due_at', 'created_at', 'updated_at'],
      },
      identity: { id: '22222222-2222-2222-2222-222222222222' },
      unchangedToast: ['description'],
    })
  })

  test('U whose columns are those of the list is not marked; one that lacks or adds a column is, until the list is read after it', () => {
    const whole = edit(UPDATE, m => { m.columns.splice(8, 0, { name: 'description', type: 'text', typeoid: 25, value: 'd' }) })
    expect(decodeWal2json(whole, TASKS)).toMatchObject({ kind: 'update', unchangedToast: [] })
    expect(decodeWal2json(whole, TASKS)).not.toHaveProperty('columnsDiffer')
    // Left out: an unchanged TOAST value, or a column dropped since the list was read.
    expect(decodeWal2json(UPDATE, TASKS)).toMatchObject({ columnsDiffer: true })
    // Renamed since: the new name is not in the list.
    const renamed = edit(whole, m => { m.columns[8].name = 'details' })
    expect(decodeWal2json(renamed, TASKS)).toMatchObject({ columnsDiffer: true })
    // Added since.
    const added = edit(whole, m => { m.columns.push({ name: 'archived', type: 'boolean', typeoid: 16, value: false }) })
    expect(decodeWal2json(added, TASKS)).toMatchObject({ columnsDiffer: true })
    // With a list read after the change, a column it lacks that did not exist then came later, never a TOAST value.
    const beforeDueAt = edit(whole, m => { m.columns = m.columns.filter((c: { name: string }) => c.name !== 'due_at' && c.name !== 'description') })
    const fresh = decodeWal2json(beforeDueAt, TASKS, null, (column) => column.name !== 'due_at')
    expect(fresh).toMatchObject({ kind: 'update', unchangedToast: ['description'] })
    expect(fresh).not.toHaveProperty('columnsDiffer')
  })

  test('U with a list read after it: a lacking column counts by its identity, at or below the row\'s highest position, or dated before the change', () => {
    // The row as wal2json writes it with include-column-positions: id (1), title (2), notes left out.
    const payload = String.raw`{"action":"U","lsn":"0/10","schema":"public","table":"t","columns":[{"name":"id","typeoid":23,"value":1,"position":1},{"name":"title","typeoid":25,"value":"x","position":3}]}`
    const table = (notes: Partial<ColumnInfo>): TableColumns => new Map([['public.t', [
      { name: 'id', typeOid: 23, typeName: 'integer', toastable: false, attnum: 1, xmin: 2 },
      { name: 'notes', typeOid: 25, typeName: 'text', toastable: true, ...notes },
      { name: 'title', typeOid: 25, typeName: 'text', toastable: true, attnum: 3, xmin: 2 },
    ]]])
    const existed = existedAtChange(1000)
    const absent = (notes: Partial<ColumnInfo>) => {
      const message = decodeWal2json(payload, table(notes), null, existed)
      return message.kind === 'update' ? message.unchangedToast : null
    }
    // Attnum 2, below title's 3: it was there, though retyped to integer since (its catalog row newer than the slot's horizon).
    expect(absent({ attnum: 2, xmin: 5000, typeOid: 23, toastable: false })).toEqual(['notes'])
    // Dropped and added again after the change: a new attnum past the row's, its catalog row newer than the horizon.
    expect(absent({ attnum: 4, xmin: 5000 })).toEqual([])
    // Past the row's columns but dated before the slot's horizon: an old column left alone.
    expect(absent({ attnum: 4, xmin: 900 })).toEqual(['notes'])
  })

  test('U lists unchanged TOAST columns in table order, and none for a table it does not know', () => {
    const sparse = edit(UPDATE, m => { m.columns = m.columns.filter((c: { name: string }) => c.name !== 'labels' && c.name !== 'metadata') })
    const known = decodeWal2json(sparse, TASKS, null, EVERY_COLUMN_EXISTED)
    const unknown = decodeWal2json(sparse, NONE)
    if (known.kind !== 'update' || unknown.kind !== 'update') throw new Error('expected updates')
    expect(known.unchangedToast).toEqual(['labels', 'description', 'metadata'])
    expect(Object.hasOwn(known.row, 'labels')).toBe(false)
    expect(unknown.unchangedToast).toEqual([])
  })

  test('U names a left-out column even when its name is also an Object.prototype key', () => {
    const columns: TableColumns = new Map([['public.t', [{ name: 'id', typeOid: 23, typeName: 'integer', toastable: false }, { name: 'constructor', typeOid: 25, typeName: 'text', toastable: true }]]])
    const payload = edit(insertOf({ name: 'id', typeoid: 23, value: 1 }), m => { m.action = 'U' })
    const message = decodeWal2json(payload, columns, null, EVERY_COLUMN_EXISTED)
    expect(message.kind === 'update' && message.unchangedToast).toEqual(['constructor'])
  })

  test('U without an identity array has a null identity', () => {
    const message = decodeWal2json(edit(UPDATE, m => { delete m.identity }), TASKS)
    expect(message.kind === 'update' && message.identity).toBeNull()
  })

  test('D carries the key of the deleted row', () => {
    expect(decodeWal2json(DELETE, NONE)).toEqual({
      kind: 'delete', schema: 'public', table: 'tasks', lsn: 0x192e3a8n,
      identity: { id: 'c1e5e558-27e1-4e57-8bda-c9ae66b2b501' },
    })
  })

  test('D under REPLICA IDENTITY FULL carries the whole old row, decoded', () => {
    const full = edit(DELETE, m => { m.identity = JSON.parse(UPDATE).columns })
    const message = decodeWal2json(full, TASKS)
    if (message.kind !== 'delete') throw new Error('expected a delete')
    expect(Object.keys(message.identity)).toHaveLength(11)
    expect(message.identity.labels).toEqual(['a', 'b c', null])
    expect(message.identity.metadata).toEqual({ k: [1, 2.5, { z: null }] })
    expect(message.identity.due_at).toBe('2026-01-01T08:00:00.000Z')
  })

  test('T names the table and the change lsn', () => {
    expect(decodeWal2json(TRUNCATE, NONE)).toEqual({ kind: 'truncate', schema: 'public', table: 'tasks', lsn: 0x192f2b8n })
  })

  test('a column named __proto__ is an ordinary key of the row', () => {
    const row = rowOf(insertOf({ name: '__proto__', typeoid: 25, value: 'x' }))
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(row, '__proto__')?.value).toBe('x')
  })
})

describe('logical messages', () => {
  test('M carries lsn, transactional, prefix and content as given', () => {
    expect(decodeWal2json(MESSAGE, NONE)).toEqual({
      kind: 'message', lsn: 0x192f4f8n, transactional: false, prefix: 'tc-heartbeat', content: 'hello',
    })
  })

  test('a transactional M has an xid and a timestamp, which it does not need', () => {
    const transactional = '{"action":"M","xid":740,"timestamp":"2026-11-28 02:01:09+00","lsn":"0/1A","transactional":true,"prefix":"p","content":"{\\"a\\":1}"}'
    expect(decodeWal2json(transactional, NONE)).toEqual({ kind: 'message', lsn: 0x1an, transactional: true, prefix: 'p', content: '{"a":1}' })
  })
})

describe('numbers stay exact', () => {
  test('int8 beyond 2^53 is a bigint, numeric keeps its exact digits, floats are numbers, NaN came as null', () => {
    expect(rowOf(NUMBERS)).toEqual({ id: 9007199254740993n, n: '12345678901234567890.123456789', f: 1.5, b: true, r: null })
  })

  test('int8 within 2^53 is a number, at both ends of the safe range', () => {
    const row = rowOf(insertOf(
      { name: 'a', typeoid: 20, value: raw('9007199254740991') },
      { name: 'b', typeoid: 20, value: raw('-9007199254740991') },
      { name: 'c', typeoid: 20, value: raw('42') },
    ))
    expect(row).toEqual({ a: Number.MAX_SAFE_INTEGER, b: Number.MIN_SAFE_INTEGER, c: 42 })
  })

  test('int8 at the limits of its range is an exact bigint', () => {
    const row = rowOf(insertOf(
      { name: 'max', typeoid: 20, value: raw('9223372036854775807') },
      { name: 'min', typeoid: 20, value: raw('-9223372036854775808') },
      { name: 'edge', typeoid: 20, value: raw('9007199254740992') },
    ))
    expect(row).toEqual({ max: 9223372036854775807n, min: -9223372036854775808n, edge: 9007199254740992n })
  })

  test('numeric keeps trailing zeros, its sign and small fractions that a double would print otherwise', () => {
    const row = rowOf(insertOf(
      { name: 'scale', typeoid: 1700, value: raw('1.10') },
      { name: 'integral', typeoid: 1700, value: raw('5.000') },
      { name: 'tiny', typeoid: 1700, value: raw('-0.0000001') },
      { name: 'plain', typeoid: 1700, value: raw('7') },
      { name: 'nan', typeoid: 1700, value: null },
    ))
    expect(row).toEqual({ scale: '1.10', integral: '5.000', tiny: '-0.0000001', plain: '7', nan: null })
  })

  test('the exact path decodes the other columns of the message as usual, identity included', () => {
    const payload = insertOf(
      { name: 'n', typeoid: 1700, value: raw('0.10') },
      { name: 'i', typeoid: 23, value: raw('-3') },
      { name: 'f', typeoid: 701, value: raw('1e+300') },
      { name: 'text', typeoid: 25, value: '"typeoid":1700,"value":1.5' },
    ).replace('"action":"I"', '"action":"D"').replace('"columns"', '"identity"')
    const message = decodeWal2json(payload, NONE)
    expect(message.kind === 'delete' && message.identity).toEqual({ n: '0.10', i: -3, f: 1e300, text: '"typeoid":1700,"value":1.5' })
  })

  test('numeric and int8 values in new row and old row keep their own exact text, in order', () => {
    const columns = '[{"name":"a","type":"bigint","typeoid":20,"value":5},{"name":"n","type":"numeric","typeoid":1700,"value":1.10},{"name":"b","type":"bigint","typeoid":20,"value":9007199254740993},{"name":"m","type":"numeric","typeoid":1700,"value":null},{"name":"o","type":"numeric","typeoid":1700,"value":-2.50}]'
    const old = columns.replace('1.10', '1.1000').replace('9007199254740993', '-9007199254740995')
    const payload = `{"action":"U","xid":1,"timestamp":"2026-11-28 02:01:09+00","lsn":"0/10","schema":"public","table":"t","columns":${columns},"identity":${old}}`
    const message = decodeWal2json(payload, NONE)
    if (message.kind !== 'update') throw new Error('expected an update')
    expect(message.row).toEqual({ a: 5, n: '1.10', b: 9007199254740993n, m: null, o: '-2.50' })
    expect(message.identity).toEqual({ a: 5, n: '1.1000', b: -9007199254740995n, m: null, o: '-2.50' })
  })

  test('a layout other than wal2json\'s compact one still yields exact numbers', () => {
    const spaced = '{"action":"I","xid":1,"timestamp":"2026-11-28 02:01:09+00","lsn":"0/10","schema":"public","table":"t","columns":[{"name":"n", "typeoid": 1700, "value": 1.50},{"name":"id","typeoid" : 20,"value" : 12345678901234567890},{"name":"i","typeoid":23,"value":7}]}'
    expect(rowOf(spaced)).toEqual({ n: '1.50', id: 12345678901234567890n, i: 7 })
  })

  test('int8FromText: a number within 2^53, a bigint beyond', () => {
    expect(int8FromText('123')).toBe(123)
    expect(int8FromText('-9007199254740993')).toBe(-9007199254740993n)
  })
})

describe('timestamps', () => {
  test('timestamptz in UTC, with 0 to 6 fractional digits, truncated to milliseconds', () => {
    expect(timestampToIso('2026-01-01 08:00:00+00')).toBe('2026-01-01T08:00:00.000Z')
    expect(timestampToIso('2026-11-28 02:01:09.5+00')).toBe('2026-11-28T02:01:09.500Z')
    expect(timestampToIso('2026-11-28 02:01:09.26+00')).toBe('2026-11-28T02:01:09.260Z')
    expect(timestampToIso('2026-11-28 02:01:09.26298+00')).toBe('2026-11-28T02:01:09.262Z')
    expect(timestampToIso('2026-11-28 02:01:09.999999+00')).toBe('2026-11-28T02:01:09.999Z')
  })

  test('the UTC shortcut agrees with full date arithmetic', () => {
    for (let i = 0; i < 500; i++) {
      const ms = Math.floor(Math.random() * 4e12)
      const micros = String(Math.floor(Math.random() * 1e6)).padStart(6, '0').slice(0, 1 + (i % 6)).replace(/0+$/, '')
      const text = new Date(ms).toISOString().slice(0, 19).replace('T', ' ') + (micros ? `.${micros}` : '')
      expect(timestampToIso(`${text}+00`)).toBe(timestampToIso(`${text}+00:00`))
      expect(timestampToIso(text)).toBe(timestampToIso(`${text}-00:00`))
    }
  })

  test('timestamptz with other offsets lands in UTC, across day and year boundaries', () => {
    expect(timestampToIso('2026-11-28 02:01:09.26298+05:30')).toBe('2026-11-27T20:31:09.262Z')
    expect(timestampToIso('2026-12-31 22:00:00-03')).toBe('2027-01-01T01:00:00.000Z')
    expect(timestampToIso('1900-01-01 00:00:00+05:30:15')).toBe('1899-12-31T18:29:45.000Z')
    expect(timestampToIso('2026-06-01 12:00:00.123-00:30')).toBe('2026-06-01T12:30:00.123Z')
  })

  test('infinity stays a word; era and five-digit years still convert; beyond a JS Date the text stays', () => {
    expect(timestampToIso('infinity')).toBe('infinity')
    expect(timestampToIso('-infinity')).toBe('-infinity')
    expect(timestampToIso('0044-03-15 12:00:00+00 BC')).toBe('-000043-03-15T12:00:00.000Z')
    expect(timestampToIso('0001-01-01 00:00:00+00 BC')).toBe('0000-01-01T00:00:00.000Z')
    expect(timestampToIso('0099-06-01 00:00:00+00')).toBe('0099-06-01T00:00:00.000Z')
    expect(timestampToIso('10000-01-01 00:00:00+00')).toBe('+010000-01-01T00:00:00.000Z')
    expect(timestampToIso('294276-12-31 23:59:59.999999+00')).toBe('294276-12-31 23:59:59.999999+00')
  })

  test('timestamp without time zone is read as UTC, keeping its wall-clock digits', () => {
    const row = rowOf(insertOf(
      { name: 'at', typeoid: 1114, value: '2026-11-28 02:01:09.26298' },
      { name: 'whole', typeoid: 1114, value: '2026-11-28 02:01:09' },
      { name: 'short', typeoid: 1114, value: '2026-11-28 02:01:09.5' },
      { name: 'bc', typeoid: 1114, value: '0010-01-01 00:00:00 BC' },
    ))
    expect(row).toEqual({ at: '2026-11-28T02:01:09.262Z', whole: '2026-11-28T02:01:09.000Z', short: '2026-11-28T02:01:09.500Z', bc: '-000009-01-01T00:00:00.000Z', [TIMESTAMPS]: ['at', 'whole', 'short', 'bc'] })
  })

  test('date keeps its YYYY-MM-DD text', () => {
    expect(rowOf(insertOf({ name: 'd', typeoid: 1082, value: '2026-11-28' }))).toEqual({ d: '2026-11-28' })
  })

  test('a timestamp in another DateStyle is refused, naming the column', () => {
    expect(() => rowOf(insertOf({ name: 'at', typeoid: 1184, value: 'Sat Nov 28 02:01:09 2026 UTC' })))
      .toThrow('wal2json: public.t columns "at": unexpected timestamp "Sat Nov 28 02:01:09 2026 UTC" (is DateStyle ISO?)')
  })
})

describe('arrays', () => {
  test('quoted elements, backslash escapes, NULL and the quoted string "NULL"', () => {
    expect(parseArrayLiteral(String.raw`{a,"b c","say \"hi\"","back\\slash","NULL",NULL,""}`))
      .toEqual(['a', 'b c', 'say "hi"', 'back\\slash', 'NULL', null, ''])
  })

  test('empty, nested and with explicit bounds', () => {
    expect(parseArrayLiteral('{}')).toEqual([])
    expect(parseArrayLiteral('{{1,2},{3,4}}', 23)).toEqual([[1, 2], [3, 4]])
    expect(parseArrayLiteral('{{{a}},{{b}}}')).toEqual([[['a']], [['b']]])
    expect(parseArrayLiteral('[0:1]={x,y}')).toEqual(['x', 'y'])
  })

  test('malformed literals are refused with a position', () => {
    expect(() => parseArrayLiteral('{a,"b')).toThrow('malformed array literal at position 5')
    expect(() => parseArrayLiteral('{a,b')).toThrow('malformed array literal at position 4')
    expect(() => parseArrayLiteral('{a}x')).toThrow('malformed array literal at position 3')
    expect(() => parseArrayLiteral('a,b')).toThrow('malformed array literal at position 0')
    expect(() => parseArrayLiteral('{a,,b}')).toThrow('malformed array literal at position 3')
  })

  test('elements decode by the element type', () => {
    const row = rowOf(insertOf(
      { name: 'ints', typeoid: 1007, value: '{1,-2,NULL}' },
      { name: 'smalls', typeoid: 1005, value: '{{1,2},{3,4}}' },
      { name: 'bigs', typeoid: 1016, value: '{1,9223372036854775807}' },
      { name: 'bools', typeoid: 1000, value: '{t,f,NULL}' },
      { name: 'numerics', typeoid: 1231, value: '{1.10,NaN,12345678901234567890.5}' },
      { name: 'floats', typeoid: 1022, value: '{1.5,-0,Infinity,NaN}' },
      { name: 'uuids', typeoid: 2951, value: '{22222222-2222-2222-2222-222222222222}' },
      { name: 'varchars', typeoid: 1015, value: '{"a,b",c}' },
      { name: 'times', typeoid: 1185, value: '{"2026-11-28 02:01:09.26298+00","2026-01-01 08:00:00+05:30",infinity}' },
      { name: 'docs', typeoid: 3807, value: String.raw`{"{\"a\": 1}","[1, 2]",NULL}` },
      { name: 'empty', typeoid: 1009, value: '{}' },
    ))
    expect(row).toEqual({
      ints: [1, -2, null],
      smalls: [[1, 2], [3, 4]],
      bigs: [1, 9223372036854775807n],
      bools: [true, false, null],
      numerics: ['1.10', 'NaN', '12345678901234567890.5'],
      floats: [1.5, -0, Infinity, NaN],
      uuids: ['22222222-2222-2222-2222-222222222222'],
      varchars: ['a,b', 'c'],
      times: ['2026-11-28T02:01:09.262Z', '2026-01-01T02:30:00.000Z', 'infinity'],
      docs: [{ a: 1 }, [1, 2], null],
      empty: [],
    })
  })
})

describe('json and jsonb', () => {
  test('the document is parsed, json and jsonb alike', () => {
    const row = rowOf(insertOf(
      { name: 'b', typeoid: 3802, value: '{"k": [1, 2.5, {"z": null}], "s": "x"}' },
      { name: 'j', typeoid: 114, value: '[true, "a", 3]' },
      { name: 'scalar', typeoid: 3802, value: '"just a string"' },
    ))
    expect(row).toEqual({ b: { k: [1, 2.5, { z: null }], s: 'x' }, j: [true, 'a', 3], scalar: 'just a string' })
  })

  test('integers beyond 2^53 inside a document become exact strings; other numbers stay numbers', () => {
    expect(parseJsonValue('{"id": 12345678901234567890, "safe": 9007199254740991, "f": 1234567890123456.7, "n": [-9007199254740993]}'))
      .toEqual({ id: '12345678901234567890', safe: 9007199254740991, f: 1234567890123456.7, n: ['-9007199254740993'] })
  })

  test('an invalid document is refused, naming the column', () => {
    expect(() => rowOf(insertOf({ name: 'meta', typeoid: 3802, value: '{"a":' }))).toThrow(/^wal2json: public\.t columns "meta": invalid JSON value/)
  })
})

describe('types it does not know pass through', () => {
  test('strings, numbers and booleans of unknown oids and of domains stay as wal2json gave them', () => {
    const row = rowOf(insertOf(
      { name: 'money', typeoid: 790, value: '$1.00' },
      { name: 'interval', typeoid: 1186, value: '1 day 02:00:00' },
      { name: 'bytea', typeoid: 17, value: '5461706972' },
      { name: 'domain', typeoid: 16_385, value: '42' },
      { name: 'enum', typeoid: 16_400, value: 'high' },
      { name: 'box_array', typeoid: 1020, value: '{(1,1),(0,0);(2,2),(1,1)}' },
      { name: 'number', typeoid: 99_999, value: raw('3') },
      { name: 'flag', typeoid: 99_998, value: raw('false') },
    ))
    expect(row).toEqual({
      money: '$1.00', interval: '1 day 02:00:00', bytea: '5461706972', domain: '42', enum: 'high',
      box_array: '{(1,1),(0,0);(2,2),(1,1)}', number: 3, flag: false,
    })
  })
})

describe('malformed input', () => {
  test('malformed JSON is refused with the position where it broke', () => {
    expect(() => decodeWal2json('{"action":"B","xid":728,}', NONE)).toThrow(/^wal2json: malformed JSON at position 24 near /)
    expect(() => decodeWal2json('{"action":"B","xid":72', NONE)).toThrow(/^wal2json: malformed JSON at position 22 /)
    expect(() => decodeWal2json('{"action":"I"} trailing', NONE)).toThrow(/^wal2json: malformed JSON at position 15 /)
    expect(() => decodeWal2json('', NONE)).toThrow(/^wal2json: malformed JSON at position 0 /)
  })

  test('the error message is one line', () => {
    try {
      decodeWal2json('{"action":"B",\n"xid":\n}', NONE)
      throw new Error('not refused')
    } catch (error) {
      expect((error as Error).message).toStartWith('wal2json: malformed JSON at position 22')
      expect((error as Error).message).not.toContain('\n')
    }
  })

  test('an unknown action is refused by name', () => {
    expect(() => decodeWal2json('{"action":"X","xid":1}', NONE)).toThrow('wal2json: unknown action "X"')
    expect(() => decodeWal2json('{"xid":1}', NONE)).toThrow('wal2json: unknown action undefined')
  })

  test('JSON that is not an object is refused', () => {
    expect(() => decodeWal2json('[1,2]', NONE)).toThrow('wal2json: expected a JSON object')
    expect(() => decodeWal2json('null', NONE)).toThrow('wal2json: expected a JSON object')
  })

  test('bytes that are not UTF-8 are refused, not replaced', () => {
    expect(() => decodeWal2json(new Uint8Array([0x7b, 0xff, 0x7d]), NONE)).toThrow('wal2json: payload of 3 bytes is not valid UTF-8')
  })

  test('fields the options should have produced are required', () => {
    expect(() => decodeWal2json(BEGIN.replace(/,"nextlsn":"[^"]*"/, ''), NONE)).toThrow('wal2json: B message without a valid "nextlsn"')
    expect(() => decodeWal2json(INSERT.replace(/,"columns":.*\]\}$/, '}'), NONE)).toThrow('wal2json: I message without a valid "columns"')
    expect(() => decodeWal2json(DELETE.replace(/,"identity":.*\]\}$/, '}'), NONE)).toThrow('wal2json: D message without a valid "identity"')
    expect(() => decodeWal2json(INSERT.replaceAll(/"typeoid":\d+,/g, ''), NONE)).toThrow('wal2json: public.workspaces columns "id": a column needs "name" and "typeoid" (is include-type-oids on?)')
    expect(() => decodeWal2json(MESSAGE.replace('"transactional":false,', ''), NONE)).toThrow('wal2json: M message without a valid "transactional"')
    expect(() => decodeWal2json(TRUNCATE.replace('"lsn":"0/192F2B8"', '"lsn":"nope"'), NONE)).toThrow('wal2json: T message: invalid LSN "nope"')
  })
})
