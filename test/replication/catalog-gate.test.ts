// The catalog gate alone: wal2json messages in, decoded messages out, with a fake catalog reader.

import { describe, expect, test } from 'bun:test'
import type { ColumnInfo, DecodedMessage, Update } from '../../src/decode/types.ts'
import { MIN_READING_INTERVAL_MS, createCatalogGate } from '../../src/replication/catalog-gate.ts'
import type { XLogData } from '../../src/replication/messages.ts'
import type { CatalogReading } from '../../src/replication/tables.ts'
import { waitFor } from '../support/ports.ts'

const column = (name: string, typeOid = 25): ColumnInfo => ({ name, typeOid, typeName: 'text', toastable: typeOid === 25 })
const reading = (columns: ColumnInfo[], covered: number[] = []): CatalogReading => ({
  columns: new Map([['public.tasks', columns]]),
  covers: (xid) => covered.includes(xid),
  existedAt: () => true,
})
const xlog = (json: object): XLogData => ({ dataStart: 0n, walEnd: 0n, data: Buffer.from(JSON.stringify(json)) })
const begin = (xid: number) => xlog({ action: 'B', xid, nextlsn: '0/100', timestamp: '2026-01-01 00:00:00+00' })
const commit = (xid: number) => xlog({ action: 'C', xid, nextlsn: '0/100', timestamp: '2026-01-01 00:00:00+00' })
const update = (...names: string[]) =>
  xlog({ action: 'U', lsn: '0/90', schema: 'public', table: 'tasks', columns: names.map((name) => ({ name, typeoid: 25, value: name })) })

/** A gate over `first`, whose readings answer with `next` (in turn) when released; records what comes out. */
function gateWith(first: CatalogReading, next: CatalogReading[]) {
  const out: DecodedMessage[] = []
  const events: string[] = []
  const answers: ((reading: CatalogReading) => void)[] = []
  let readings = 0
  const gate = createCatalogGate({
    reading: first,
    readCatalog: () => {
      readings++
      return new Promise((resolve) => answers.push(() => resolve(next.shift()!)))
    },
    signal: new AbortController().signal,
    decoded: (message) => out.push(message),
    held: () => events.push('held'),
    released: () => events.push('released'),
    fail: (error) => events.push(`failed ${error}`),
  })
  return { gate, out, events, answer: () => answers.shift()!(undefined as never), readings: () => readings }
}

describe('catalog gate', () => {
  test('passes a change that agrees with the reading through at once, without reading again', () => {
    const { gate, out, readings } = gateWith(reading([column('id'), column('title')]), [])
    for (const message of [begin(1), update('id', 'title'), commit(1)]) gate.receive(message)
    expect(out.map((message) => message.kind)).toEqual(['begin', 'update', 'commit'])
    expect(readings()).toBe(0)
  })

  test('holds an update whose columns differ, and what follows, until a reading that covers it; then hands all out in order', async () => {
    const { gate, out, events, answer, readings } = gateWith(reading([column('id'), column('title'), column('notes')]), [
      reading([column('id'), column('title'), column('notes')], [1]),
    ])
    for (const message of [begin(1), update('id', 'title'), commit(1), begin(2)]) gate.receive(message)
    expect(out.map((message) => message.kind)).toEqual(['begin'])
    expect(gate.waiting()).toEqual({ changes: 3, bytes: expect.any(Number) })
    expect(gate.holding).toBe(true)
    await waitFor('a reading asked for', () => readings() === 1)
    answer()
    await waitFor('released', () => events.includes('released'))
    expect(out.map((message) => message.kind)).toEqual(['begin', 'update', 'commit', 'begin'])
    // Read after the commit, `notes` is taken for an unchanged TOAST value, and the update no longer differs.
    expect((out[1] as Update).unchangedToast).toEqual(['notes'])
    expect(out[1]).not.toHaveProperty('columnsDiffer')
    expect(gate.waiting()).toEqual({ changes: 0, bytes: 0 })
  })

  test('a reading that does not cover the transaction yet is asked for again, paced', async () => {
    const { gate, out, answer, readings } = gateWith(reading([column('id'), column('notes')]), [
      reading([column('id'), column('notes')]),
      reading([column('id'), column('notes')], [1]),
    ])
    gate.receive(begin(1))
    gate.receive(update('id'))
    await waitFor('first reading', () => readings() === 1)
    const firstAnsweredAt = performance.now()
    answer()
    await waitFor('second reading', () => readings() === 2)
    expect(performance.now() - firstAnsweredAt).toBeGreaterThanOrEqual(MIN_READING_INTERVAL_MS - 5)
    expect(out.map((message) => message.kind)).toEqual(['begin'])
    answer()
    await waitFor('the update', () => out.length === 2)
  })

  test('once closed, a reading that answers late hands nothing out', async () => {
    const { gate, out, events, answer, readings } = gateWith(reading([column('id'), column('notes')]), [reading([column('id'), column('notes')], [1])])
    gate.receive(begin(1))
    gate.receive(update('id'))
    await waitFor('a reading asked for', () => readings() === 1)
    gate.close()
    answer()
    await Bun.sleep(10)
    expect(out.map((message) => message.kind)).toEqual(['begin'])
    expect(events).not.toContain('released')
  })
})
