import { describe, expect, test } from 'bun:test'
import type { EventRow } from '../../src/events/events.ts'
import { NEVER_SEEN, createRowStates, rowBytes } from '../../src/events/row-states.ts'

const a = { id: 'a', status: 'todo' }
const b = { id: 'b', status: 'done' }
const state = (row: EventRow | null, lastEventId = 'E1') => ({ row, lifeCycle: null, lastEventId })
const ref = (id: string) => ({ entity: 'task' as const, id })

describe('row states', () => {
  test('rows beyond the capacity are forgotten, least recently written first, and then read back', () => {
    const rows = createRowStates(2)
    rows.load('task', 'a', state(a))
    rows.load('task', 'b', state(b))
    rows.set('task', 'a', state(a), 0)
    rows.release(0, [ref('a')])
    rows.load('task', 'c', state(null))
    rows.endRun()
    expect(rows.retain([ref('a'), ref('b'), ref('c')])).toEqual([ref('b')])
    expect(rows.get('task', 'a').row).toEqual(a)
  })

  test('rows are forgotten once they weigh more than maxBytes, whatever their number; retained ones are weighed', () => {
    const large = (id: string) => ({ id, description: 'x'.repeat(1_000) })
    const rows = createRowStates(10_000, 2 * rowBytes(large('a')))
    for (const id of ['a', 'b', 'c']) rows.load('task', id, state(large(id)))
    expect(rows.size).toMatchObject({ recent: 2, recentBytes: 2 * rowBytes(large('a')) })
    expect(rows.retainedBytes).toBe(3 * rowBytes(large('a')))
    rows.endRun()
    expect(rows.retainedBytes).toBe(0)
    expect(rows.retain([ref('a'), ref('b'), ref('c')])).toEqual([ref('a')])
    expect(rows.retainedBytes).toBe(2 * rowBytes(large('a')))
    expect(rowBytes(large('a'))).toBeGreaterThan(1_000)
  })

  test('a row written by a batch in flight is kept past the capacity until that batch is released', () => {
    const rows = createRowStates(1)
    rows.set('task', 'a', state(a), 0)
    rows.set('task', 'b', state(b), 1)
    rows.set('task', 'c', state(null), 1)
    expect(rows.get('task', 'a').row).toEqual(a)
    rows.release(0, [ref('a')])
    expect(rows.retain([ref('a'), ref('b')])).toEqual([ref('a')])
  })

  test('a release by an earlier batch keeps the row pinned by a later one', () => {
    const rows = createRowStates(0)
    rows.set('task', 'a', state(a), 0)
    rows.set('task', 'a', state({ ...a, status: 'doing' }), 1)
    rows.release(0, [ref('a')])
    expect(rows.get('task', 'a').row).toEqual({ ...a, status: 'doing' })
    rows.release(1, [ref('a')])
    expect(rows.size).toEqual({ recent: 0, recentBytes: 0, retained: 0, pinned: 0 })
  })

  test('rows retained for a run outlive the capacity and their batches until the run ends, with their latest state', () => {
    const rows = createRowStates(2)
    rows.load('task', 'a', state(a))
    expect(rows.retain([ref('a'), ref('b')])).toEqual([ref('b')])
    rows.load('task', 'b', state(b))
    rows.set('task', 'c', state(null), 0)
    rows.set('task', 'd', state(null), 0)
    rows.set('task', 'b', state({ ...b, status: 'todo' }), 0)
    rows.release(0, [ref('c'), ref('d'), ref('b')])
    expect(rows.get('task', 'a').row).toEqual(a)
    expect(rows.get('task', 'b').row).toEqual({ ...b, status: 'todo' })
    rows.endRun()
    expect(rows.retain([ref('a')])).toEqual([ref('a')])
  })

  test('a truncate in flight makes every row of the entity known gone, as of the truncate, and only that entity', () => {
    const rows = createRowStates(10)
    rows.set('task', 'a', state(a), 0)
    rows.load('task', 'b', state(b))
    rows.load('workspace', 'w', state({ id: 'w' }))
    rows.truncate('task', 1, 'E9')
    expect(rows.get('task', 'a').row).toBeNull()
    expect(rows.get('task', 'b').row).toBeNull()
    expect(rows.retain([ref('never-seen')])).toEqual([])
    // Each holds the truncate as its last event: a replayed event from before it changes nothing.
    expect(rows.get('task', 'never-seen')).toEqual({ ...NEVER_SEEN, lastEventId: 'E9' })
    expect(rows.get('task', 'b')).toEqual({ row: null, lifeCycle: null, lastEventId: 'E9' })
    expect(rows.get('workspace', 'w').row).toEqual({ id: 'w' })
    rows.release(0, [ref('a')])
    expect(rows.get('task', 'a').row).toBeNull()
    rows.release(1, [])
    rows.endRun()
    expect(rows.retain([ref('never-seen')])).toEqual([ref('never-seen')])
  })
})
