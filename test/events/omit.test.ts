import { describe, expect, test } from 'bun:test'
import type { TaskEvent } from '../../src/events/events.ts'
import { fitEvent } from '../../src/events/omit.ts'

const event = (data: Record<string, unknown> | null, previous: Record<string, unknown> | null): TaskEvent => ({
  id: '0000000000000100-00000000',
  type: 'task.updated',
  source: 'cdc',
  workspaceId: 'w',
  taskId: 't',
  lsn: '0/100',
  xid: 1,
  commitTime: '2026-12-01T00:00:00.000Z',
  data,
  previous,
})
const jsonSize = (candidate: TaskEvent) => Buffer.byteLength(JSON.stringify(candidate))

describe('an event fitted to a limit', () => {
  test('an event that fits is returned itself, without omitted', () => {
    const small = event({ id: 't', title: 'x' }, null)
    expect(fitEvent(small, jsonSize, jsonSize(small))).toBe(small)
  })

  test('the largest values go first, until it fits; the rest stays, and the original is untouched', () => {
    const original = event({ id: 't', notes: 'n'.repeat(300), description: 'd'.repeat(1_000), title: 'x' }, { id: 't', notes: 'n'.repeat(300), description: 'o'.repeat(500) })
    const copy = fitEvent(original, jsonSize, jsonSize(original) - 1_200)
    expect(copy.omitted).toEqual({ data: ['description'], previous: ['description'] })
    expect(copy.data).toEqual({ id: 't', notes: 'n'.repeat(300), title: 'x' })
    expect(copy.previous).toEqual({ id: 't', notes: 'n'.repeat(300) })
    expect(jsonSize(copy)).toBeLessThanOrEqual(jsonSize(original) - 1_200)
    expect(original.data!.description).toBe('d'.repeat(1_000))
    expect(original.omitted).toBeUndefined()
  })

  test('of two values that weigh the same, previous goes first', () => {
    const original = event({ id: 't', description: 'd'.repeat(1_000) }, { id: 't', description: 'o'.repeat(1_000) })
    const copy = fitEvent(original, jsonSize, jsonSize(original) - 900)
    expect(copy.omitted).toEqual({ data: [], previous: ['description'] })
    expect(copy.data!.description).toBe('d'.repeat(1_000))
  })

  test('a copy fitted again (a replay of a stored copy) names what both left out', () => {
    const stored = fitEvent(event({ id: 't', description: 'd'.repeat(1_000) }, { id: 't', description: 'o'.repeat(1_000) }), jsonSize, 1_500)
    const again = fitEvent(stored, jsonSize, 500)
    expect(again.omitted).toEqual({ data: ['description'], previous: ['description'] })
  })
})
