import { describe, expect, test } from 'bun:test'
import { type RowChange, TIMESTAMPS } from '../../src/decode/types.ts'
import { changeEvents, changeToEvent, rowKey } from '../../src/events/events.ts'
import { eventId, snapshotEventId, snapshotId } from '../../src/events/ids.ts'

const transaction = { commitLsn: 0x16b3748n, xid: 728, commitTime: '2026-11-28T02:01:09.264Z' }
const taskRow = {
  id: 'a0000000-0000-0000-0000-000000000001', workspace_id: 'b0000000-0000-0000-0000-000000000001', title: 'write it',
  description: 'long text', status: 'todo', priority: 2, assignee_id: null, due_at: null, labels: ['x'], metadata: { k: 1 },
  created_at: '2026-11-28T02:00:00.000Z', updated_at: '2026-11-28T02:00:00.000Z',
}
const at = { schema: 'public', lsn: 0x16b3700n }
const insert: RowChange = { ...at, kind: 'insert', table: 'tasks', row: taskRow }

describe('event ids', () => {
  test('commit LSN and ordinal in upper-case hex, sortable as strings', () => {
    expect(eventId(0x16b3748n, 3)).toBe('00000000016B3748-00000003')
    expect(eventId(0x1_0000_0000n, 0) > eventId(0xffff_ffffn, 0xffff)).toBe(true)
  })

  test('start-job runs are named by their start time in microseconds', () => {
    const id = snapshotId(new Date(Date.UTC(2026, 10, 28)))
    expect(id).toBe((BigInt(Date.UTC(2026, 10, 28)) * 1000n).toString(16).toUpperCase().padStart(16, '0'))
    expect(snapshotEventId(id, 255)).toBe(`${id}-000000FF`)
  })
})

describe('row changes into events', () => {
  test('an insert is task.created with camelCase data and a transition from null', () => {
    const event = changeToEvent(insert, transaction, 0, null)
    expect(event).toEqual({
      id: '00000000016B3748-00000000', type: 'task.created', source: 'cdc', workspaceId: taskRow.workspace_id, taskId: taskRow.id,
      lsn: '0/16B3748', xid: 728, commitTime: transaction.commitTime,
      data: {
        id: taskRow.id, workspaceId: taskRow.workspace_id, title: 'write it', description: 'long text', status: 'todo', priority: 2,
        assigneeId: null, dueAt: null, labels: ['x'], metadata: { k: 1 }, createdAt: taskRow.created_at, updatedAt: taskRow.updated_at,
      },
      previous: null,
      transition: { from: null, to: 'todo' },
    })
  })

  test('an update with an unchanged TOAST value takes it from the known row, and lists what changed', () => {
    const known = changeToEvent(insert, transaction, 0, null).data
    const { description: _omitted, ...row } = { ...taskRow, status: 'done', priority: 3 }
    const update: RowChange = { ...at, kind: 'update', table: 'tasks', row, identity: { id: taskRow.id }, unchangedToast: ['description'] }
    const event = changeToEvent(update, transaction, 1, known)
    expect(event.type).toBe('task.updated')
    expect(event.data?.description).toBe('long text')
    expect(event.previous).toEqual(known)
    expect(event.changed).toEqual(['status', 'priority'])
    expect(event.transition).toEqual({ from: 'todo', to: 'done' })
  })

  test('an unchanged TOAST value that no known row holds is named in unchangedToast, never invented', () => {
    const { description: _omitted, ...row } = { ...taskRow, status: 'done' }
    const update: RowChange = { ...at, kind: 'update', table: 'tasks', row, identity: { id: taskRow.id }, unchangedToast: ['description'] }
    const event = changeToEvent(update, transaction, 1, null)
    expect(event.unchangedToast).toEqual(['description'])
    expect(event.data && 'description' in event.data).toBe(false)
    expect(event.data?.status).toBe('done')
    const filled = changeToEvent(update, transaction, 1, changeToEvent(insert, transaction, 0, null).data)
    expect(filled.unchangedToast).toBeUndefined()
  })

  test('an update of an unknown row has no previous, no changed columns and no transition', () => {
    const update: RowChange = { ...at, kind: 'update', table: 'tasks', row: taskRow, identity: { id: taskRow.id }, unchangedToast: [] }
    const event = changeToEvent(update, transaction, 0, null)
    expect(event.previous).toBeNull()
    expect(event.changed).toEqual([])
    expect(event.transition).toBeUndefined()
  })

  test('an update that keeps the status has no transition', () => {
    const known = changeToEvent(insert, transaction, 0, null).data
    const update: RowChange = { ...at, kind: 'update', table: 'tasks', row: { ...taskRow, title: 'renamed' }, identity: { id: taskRow.id }, unchangedToast: [] }
    const event = changeToEvent(update, transaction, 0, known)
    expect(event.changed).toEqual(['title'])
    expect(event.transition).toBeUndefined()
  })

  test('REPLICA IDENTITY FULL gives previous from the WAL itself', () => {
    const update: RowChange = { ...at, kind: 'update', table: 'tasks', row: { ...taskRow, status: 'blocked' }, identity: taskRow, unchangedToast: [] }
    const event = changeToEvent(update, transaction, 0, null)
    expect(event.previous?.status).toBe('todo')
    expect(event.transition).toEqual({ from: 'todo', to: 'blocked' })
  })

  test('each row names its own timestamps, camelCase; an old row from the WAL over a known one keeps the types of both', () => {
    const typed = { ...taskRow, started_at: '2026-12-01T09:00:00.000Z', [TIMESTAMPS]: ['created_at', 'updated_at', 'started_at'] }
    const created = changeToEvent({ ...at, kind: 'insert', table: 'tasks', row: typed }, transaction, 0, null)
    expect(created.data?.[TIMESTAMPS]).toEqual(['createdAt', 'updatedAt', 'startedAt'])
    // The WAL's old row lacks the large description (unchanged TOAST) and retypes nothing: the known row's
    // timestamps it does not carry stay named.
    const known = { ...created.data, archivedAt: '2026-12-02T00:00:00.000Z', [TIMESTAMPS]: ['archivedAt'] }
    const { description, ...identity } = typed
    const update: RowChange = { ...at, kind: 'update', table: 'tasks', row: { ...identity, status: 'done' }, identity, unchangedToast: ['description'] }
    const event = changeToEvent(update, transaction, 1, known)
    expect(event.previous?.[TIMESTAMPS]).toEqual(['archivedAt', 'createdAt', 'updatedAt', 'startedAt'])
    expect(event.data?.[TIMESTAMPS]).toEqual(['createdAt', 'updatedAt', 'startedAt'])
    expect(event.data?.description).toBe(description)
  })

  test('a delete is task.deleted with null data, the known row as previous and a transition to null', () => {
    const known = changeToEvent(insert, transaction, 0, null).data
    const deleted: RowChange = { ...at, kind: 'delete', table: 'tasks', identity: { id: taskRow.id } }
    const event = changeToEvent(deleted, transaction, 4, known)
    expect(event).toMatchObject({ type: 'task.deleted', taskId: taskRow.id, workspaceId: taskRow.workspace_id, data: null, previous: known, transition: { from: 'todo', to: null } })
    expect(rowKey(deleted)).toEqual({ entity: 'task', id: taskRow.id })
  })

  test('a key change is the old id deleted, then the new id created, at consecutive ordinals; under FULL the old row fills what the WAL left out', () => {
    const { description, ...logged } = taskRow
    const moved: RowChange = { ...at, kind: 'update', table: 'tasks', row: { ...logged, id: 'a0000000-0000-0000-0000-000000000002' }, identity: taskRow, unchangedToast: ['description'] }
    const events = changeEvents(moved, transaction, 3, () => null)
    expect(events.map((event) => [event.id, event.type, event.taskId, event.transition])).toEqual([
      ['00000000016B3748-00000003', 'task.deleted', taskRow.id, { from: 'todo', to: null }],
      ['00000000016B3748-00000004', 'task.created', 'a0000000-0000-0000-0000-000000000002', { from: null, to: 'todo' }],
    ])
    expect([events[0]!.previous?.description, events[1]!.data?.description, events[1]!.unchangedToast]).toEqual([description, description, undefined])
    const sameKey: RowChange = { ...moved, row: { ...logged } }
    expect(changeEvents(sameKey, transaction, 3, () => null).map((event) => event.type)).toEqual(['task.updated'])
  })

  test('workspace changes and truncates', () => {
    const workspace: RowChange = { ...at, kind: 'insert', table: 'workspaces', row: { id: 'w1', name: 'n', created_at: 't', updated_at: 't' } }
    const event = changeToEvent(workspace, transaction, 0, null)
    expect(event).toMatchObject({ type: 'workspace.created', workspaceId: 'w1', taskId: null, data: { id: 'w1', name: 'n', createdAt: 't', updatedAt: 't' } })
    expect(event.transition).toBeUndefined()
    const truncate: RowChange = { ...at, kind: 'truncate', table: 'tasks' }
    expect(changeToEvent(truncate, transaction, 1, null)).toMatchObject({ type: 'tasks.truncated', workspaceId: null, taskId: null, data: null })
    expect(rowKey(truncate)).toBeNull()
  })

  test('bigints beyond 2^53 leave as exact decimal strings', () => {
    const change: RowChange = { ...at, kind: 'insert', table: 'tasks', row: { ...taskRow, big: 9007199254740993n } }
    expect(JSON.stringify(changeToEvent(change, transaction, 0, null).data)).toContain('"big":"9007199254740993"')
  })
})
