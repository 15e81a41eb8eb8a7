import { describe, expect, test } from 'bun:test'
import type { RowChange } from '../../src/decode/types.ts'
import { type EventRow, type TaskEvent, changeToEvent, snapshotEvent } from '../../src/events/events.ts'
import { type KnownTask, type LifeCycle, LIFE_CYCLE, UNKNOWN_LIFE_CYCLE, describeTransition, finishedVisit, stepLifeCycle } from '../../src/events/life-cycle.ts'

const id = 'a0000000-0000-0000-0000-000000000001'
const row = { id, workspace_id: 'b0000000-0000-0000-0000-000000000001', title: 'write it', status: 'todo' }
const at = { schema: 'public', lsn: 0n, table: 'tasks' }
const insert = (status: string): RowChange => ({ ...at, kind: 'insert', row: { ...row, status } })
const update = (status: string): RowChange => ({ ...at, kind: 'update', identity: { id }, row: { ...row, status }, unchangedToast: [] })
const remove: RowChange = { ...at, kind: 'delete', identity: { id } }
const T0 = Date.parse('2026-11-28T02:00:00.000Z')
const time = (ms: number) => new Date(T0 + ms).toISOString()

/** Runs changes through events and the life cycle as the pipeline does: each event from the state the previous left. */
function run(changes: [RowChange, number][], start: KnownTask = { row: null, lifeCycle: null }) {
  let state = start
  const events: TaskEvent[] = []
  for (const [change, ms] of changes) {
    const event = changeToEvent(change, { commitLsn: BigInt(events.length + 1), xid: 1, commitTime: time(ms) }, 0, state.row)
    state = { row: event.data, lifeCycle: stepLifeCycle(event, state, true) }
    events.push(event)
  }
  return { events, state }
}

describe('life cycle', () => {
  test('an exact script: every visit timed from the commit times, and the deletion closes the last', () => {
    const { events, state } = run([[insert('todo'), 0], [update('in_progress'), 12_400], [update('blocked'), 20_000],
      [update('in_progress'), 80_000], [update('done'), 95_500], [remove, 100_000]])
    expect(events.map((event) => event.transition)).toEqual([
      { from: null, to: 'todo', fromSince: null, inFromMs: null },
      { from: 'todo', to: 'in_progress', fromSince: time(0), inFromMs: 12_400 },
      { from: 'in_progress', to: 'blocked', fromSince: time(12_400), inFromMs: 7_600 },
      { from: 'blocked', to: 'in_progress', fromSince: time(20_000), inFromMs: 60_000 },
      { from: 'in_progress', to: 'done', fromSince: time(80_000), inFromMs: 15_500 },
      { from: 'done', to: null, fromSince: time(95_500), inFromMs: 4_500 },
    ])
    expect((events[4] as TaskEvent & { [LIFE_CYCLE]: LifeCycle })[LIFE_CYCLE]).toEqual({
      statusSince: time(95_500), timeInStatus: { todo: 12_400, in_progress: 23_100, blocked: 60_000 }, statusVisits: { todo: 1, in_progress: 2, blocked: 1, done: 1 },
    })
    expect(state.lifeCycle).toEqual({ statusSince: null, timeInStatus: { todo: 12_400, in_progress: 23_100, blocked: 60_000, done: 4_500 }, statusVisits: { todo: 1, in_progress: 2, blocked: 1, done: 1 } })
  })

  test('an update that leaves the status alone leaves the life cycle alone', () => {
    const { events, state } = run([[insert('todo'), 0], [update('todo'), 5_000]])
    expect(events[1]!.transition).toBeUndefined()
    expect(state.lifeCycle).toEqual({ statusSince: time(0), timeInStatus: {}, statusVisits: { todo: 1 } })
  })

  test('a task first seen in its status (the initial load) has no timing until it moves, and its totals start there', () => {
    const loaded = snapshotEvent('task', { id, status: 'todo' }, { id: 'L-0', source: 'initial', lsn: null, xid: null, commitTime: time(0) })
    const lifeCycle = stepLifeCycle(loaded, { row: null, lifeCycle: null }, true)
    expect(lifeCycle).toEqual(UNKNOWN_LIFE_CYCLE)
    const { events, state } = run([[update('in_progress'), 30_000], [update('done'), 40_000]], { row: loaded.data, lifeCycle })
    expect(events[0]!.transition).toEqual({ from: 'todo', to: 'in_progress', fromSince: null, inFromMs: null })
    expect(state.lifeCycle).toEqual({ statusSince: time(40_000), timeInStatus: { in_progress: 10_000 }, statusVisits: { in_progress: 1, done: 1 } })
  })

  test('with no known state (--initial-load never) an update starts an unknown life cycle', () => {
    const { events, state } = run([[update('in_progress'), 0], [update('done'), 1_000]])
    expect(events[0]!.transition).toBeUndefined()
    expect(events[1]!.transition).toEqual({ from: 'in_progress', to: 'done', fromSince: null, inFromMs: null })
    expect(state.lifeCycle).toEqual({ statusSince: time(1_000), timeInStatus: {}, statusVisits: { done: 1 } })
  })

  test('a reload keeps the life cycle of a task in the same status, and leaves statusSince unknown for one that moved meanwhile', () => {
    const before: KnownTask = { row: { id, status: 'todo' }, lifeCycle: { statusSince: time(0), timeInStatus: { blocked: 5 }, statusVisits: { todo: 2, blocked: 1 } } }
    const reload = (status: string) => snapshotEvent('task', { id, status }, { id: 'L-1', source: 'initial', lsn: null, xid: null, commitTime: time(9_000) })
    expect(stepLifeCycle(reload('todo'), before, true)).toBe(before.lifeCycle!)
    expect(stepLifeCycle(reload('done'), before, true)).toEqual({ ...before.lifeCycle!, statusSince: null })
  })

  test("a reload's deletion carries no timing and closes no visit", () => {
    const lifeCycle: LifeCycle = { statusSince: time(0), timeInStatus: {}, statusVisits: { todo: 1 } }
    const deletion: TaskEvent = {
      id: 'L-2', type: 'task.deleted', source: 'initial', workspaceId: null, taskId: id, lsn: null, xid: null, commitTime: time(5_000),
      data: null, previous: { id, status: 'todo' }, transition: { from: 'todo', to: null, fromSince: null, inFromMs: null },
    }
    expect(stepLifeCycle(deletion, { row: { id, status: 'todo' }, lifeCycle }, true)).toBe(lifeCycle)
    expect(deletion.transition).toEqual({ from: 'todo', to: null, fromSince: null, inFromMs: null })
  })

  test('a creation starts afresh, whatever the id held before (a key change, a row inserted again)', () => {
    const tombstone: KnownTask = { row: null, lifeCycle: { statusSince: null, timeInStatus: { todo: 7 }, statusVisits: { todo: 1 } } }
    expect(run([[insert('todo'), 50]], tombstone).state.lifeCycle).toEqual({ statusSince: time(50), timeInStatus: {}, statusVisits: { todo: 1 } })
  })

  test('an event republished as stored keeps its own timing; the life cycle after it is computed all the same', () => {
    const stored = changeToEvent(update('done'), { commitLsn: 9n, xid: 1, commitTime: time(10_000) }, 0, { id, status: 'todo' } as EventRow)
    stored.transition = { from: 'todo', to: 'done', fromSince: time(1_000), inFromMs: 9_000 }
    const lifeCycle = stepLifeCycle(stored, { row: { id, status: 'todo' }, lifeCycle: { statusSince: time(1_000), timeInStatus: {}, statusVisits: { todo: 1 } } }, false)
    expect(stored.transition).toEqual({ from: 'todo', to: 'done', fromSince: time(1_000), inFromMs: 9_000 })
    expect(lifeCycle).toEqual({ statusSince: time(10_000), timeInStatus: { todo: 9_000 }, statusVisits: { todo: 1, done: 1 } })
  })

  test('finished visits of known length, for the metric', () => {
    const { events } = run([[insert('todo'), 0], [update('done'), 2_000]])
    expect(events.map(finishedVisit)).toEqual([null, { status: 'todo', ms: 2_000 }])
  })

  test('a transition for a person', () => {
    expect(describeTransition({ from: 'todo', to: 'in_progress', fromSince: time(0), inFromMs: 12_400 })).toBe('todo → in_progress after 12.4 s in todo')
    expect(describeTransition({ from: 'blocked', to: null, fromSince: time(0), inFromMs: 3 * 3_600_000 })).toBe('blocked → ∅ after 3.0 h in blocked')
    expect(describeTransition({ from: null, to: 'todo', fromSince: null, inFromMs: null })).toBe('∅ → todo')
    expect(describeTransition({ from: 'todo', to: 'done', fromSince: null, inFromMs: null })).toBe('todo → done')
  })
})
