// Which transactions a catalog reading covers: visibility of a 32-bit xid in a txid_snapshot of 64-bit ones.

import { expect, test } from 'bun:test'
import { existedAtChange, snapshotCovers, xidPrecedes } from '../../src/replication/tables.ts'

test('a transaction below xmin is covered; at or above xmax, or in progress, it is not', () => {
  const covers = snapshotCovers('1000:1010:1003,1007')
  for (const xid of [3, 999, 1000, 1001, 1009]) if (xid !== 1003 && xid !== 1007) expect(covers(xid)).toBe(true)
  for (const xid of [1003, 1007, 1010, 1011, 5000]) expect(covers(xid)).toBe(false)
})

test('an empty snapshot (xmin = xmax, nothing in progress) covers everything before it', () => {
  const covers = snapshotCovers('742:742:')
  expect(covers(741)).toBe(true)
  expect(covers(742)).toBe(false)
})

test('xids are widened next to xmax across the 32-bit wraparound and across epochs', () => {
  // xmax just past a wraparound: epoch 1, low part 5. The xid 4294967290 is epoch 0's, five before the wrap.
  const epochOne = 2n ** 32n
  const covers = snapshotCovers(`${epochOne - 10n}:${epochOne + 5n}:${epochOne + 1n}`)
  expect(covers(4294967290)).toBe(true)
  expect(covers(1)).toBe(false) // in progress
  expect(covers(2)).toBe(true)
  expect(covers(5)).toBe(false) // xmax itself
  expect(covers(6)).toBe(false) // later, though its low bits are small
  // Deep into epoch 3: a recent xid is compared by its full value.
  const epochThree = 3n * 2n ** 32n + 100n
  const later = snapshotCovers(`${epochThree}:${epochThree}:`)
  expect(later(99)).toBe(true)
  expect(later(100)).toBe(false)
  expect(later(101)).toBe(false)
})

test('an unreadable snapshot is an error, not a guess', () => {
  expect(() => snapshotCovers('garbage')).toThrow('unreadable txid_snapshot')
})

test('transaction ids compare modulo 2^32, as PostgreSQL compares them', () => {
  expect(xidPrecedes(100, 200)).toBe(true)
  expect(xidPrecedes(200, 100)).toBe(false)
  expect(xidPrecedes(4294967290, 5)).toBe(true) // across the wrap
  expect(xidPrecedes(5, 4294967290)).toBe(false)
})

test('a column existed at a change when its attnum is within the row, or its catalog row is older than the slot or frozen', () => {
  const existed = existedAtChange(1000)
  const column = { name: 'notes', typeOid: 25, typeName: 'text', toastable: true }
  expect(existed({ ...column, attnum: 5, xmin: 5000 }, 7)).toBe(true)
  expect(existed({ ...column, attnum: 8, xmin: 5000 }, 7)).toBe(false)
  expect(existed({ ...column, attnum: 8, xmin: 999 }, 7)).toBe(true)
  expect(existed({ ...column, attnum: 8, xmin: 2 }, 7)).toBe(true) // frozen
  expect(existedAtChange(null)({ ...column, attnum: 8, xmin: 999 }, 7)).toBe(false) // no slot to date it by
})
