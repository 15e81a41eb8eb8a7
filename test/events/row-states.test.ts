import { describe, expect, test } from 'bun:test'
import { createRowStates } from '../../src/events/row-states.ts'

const a = { id: 'a', status: 'todo' }
const b = { id: 'b', status: 'done' }

describe('row states', () => {
  test('rows beyond the capacity are forgotten, least recently written first', () => {
    const rows = createRowStates(2)
    rows.load('task', 'a', a)
    rows.load('task', 'b', b)
    rows.set('task', 'a', a, 0)
    rows.release(0, [{ entity: 'task', id: 'a' }])
    rows.load('task', 'c', null)
    expect(rows.has('task', 'a')).toBe(true)
    expect(rows.has('task', 'b')).toBe(false)
    expect(rows.has('task', 'c')).toBe(true)
    expect(rows.size).toEqual({ recent: 2, pinned: 0 })
  })

  test('a row written by a batch in flight is kept past the capacity until that batch is released', () => {
    const rows = createRowStates(1)
    rows.set('task', 'a', a, 0)
    rows.set('task', 'b', b, 1)
    rows.set('task', 'c', null, 1)
    expect(rows.get('task', 'a')).toEqual(a)
    rows.release(0, [{ entity: 'task', id: 'a' }])
    expect(rows.has('task', 'a')).toBe(false)
    expect(rows.has('task', 'b')).toBe(true)
  })

  test('a release by an earlier batch keeps the row pinned by a later one', () => {
    const rows = createRowStates(0)
    rows.set('task', 'a', a, 0)
    rows.set('task', 'a', { ...a, status: 'doing' }, 1)
    rows.release(0, [{ entity: 'task', id: 'a' }])
    expect(rows.get('task', 'a')).toEqual({ ...a, status: 'doing' })
    rows.release(1, [{ entity: 'task', id: 'a' }])
    expect(rows.size).toEqual({ recent: 0, pinned: 0 })
  })

  test('a truncate in flight makes every row of the entity known gone, and only that entity', () => {
    const rows = createRowStates(10)
    rows.set('task', 'a', a, 0)
    rows.load('task', 'b', b)
    rows.load('workspace', 'w', { id: 'w' })
    rows.truncate('task', 1)
    expect(rows.get('task', 'a')).toBeNull()
    expect(rows.get('task', 'b')).toBeNull()
    expect(rows.has('task', 'never-seen')).toBe(true)
    expect(rows.get('workspace', 'w')).toEqual({ id: 'w' })
    rows.release(0, [{ entity: 'task', id: 'a' }])
    expect(rows.get('task', 'a')).toBeNull()
    rows.release(1, [])
    expect(rows.has('task', 'never-seen')).toBe(false)
  })
})
