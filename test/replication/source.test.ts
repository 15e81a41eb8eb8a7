// The change source against a real PostgreSQL 15 with wal2json.

import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import type { DecodedMessage, Insert, Update } from '../../src/decode/types.ts'
import { readSlot } from '../../src/replication/slot.ts'
import { type PostgresServer, startPostgres } from '../support/postgres.ts'
import { collect, confirmedFlush, countKind, rowChanges, sourceFor, stopSources, uniqueSlot } from '../support/replication.ts'
import { createTask, createWorkspace } from '../support/workspace.ts'
import { waitFor } from '../support/ports.ts'

let pg: PostgresServer

beforeAll(async () => {
  pg = await startPostgres()
}, 120_000)
afterEach(stopSources, 60_000)
afterAll(async () => {
  await pg?.stop()
}, 120_000)

const commits = (messages: DecodedMessage[]) => countKind(messages, 'commit')

describe('change source', () => {
  test('hands out every change type framed by begin and commit, in commit order, with exact values', async () => {
    const source = sourceFor(pg)
    await waitFor('streaming', () => source.state === 'streaming')
    const workspaceId = await createWorkspace(pg.sql, 'life cycle')
    const description = 'x'.repeat(4000) + [...Array(2000)].map((_, i) => i.toString(36)).join('')
    const taskId = await createTask(pg.sql, workspaceId, { description, labels: ['a', 'b c'], metadata: { k: [1, 2.5] }, due_at: new Date('2026-01-01T10:00:00Z') })
    await pg.sql`update tasks set status = 'in_progress' where id = ${taskId}`
    await pg.sql`delete from tasks where id = ${taskId}`
    await pg.sql`create table untracked (id int)`
    await pg.sql`insert into untracked values (1)`
    await pg.sql`truncate tasks`

    const messages = await collect(source, (all) => commits(all) >= 5)
    const changes = rowChanges(messages)
    expect(changes.map((change) => `${change.kind} ${change.table}`)).toEqual([
      'insert workspaces',
      'insert tasks',
      'update tasks',
      'delete tasks',
      'truncate tasks',
    ])
    expect(messages.map((message) => message.kind)).toEqual([
      'begin', 'insert', 'commit',
      'begin', 'insert', 'commit',
      'begin', 'update', 'commit',
      'begin', 'delete', 'commit',
      'begin', 'truncate', 'commit',
    ])
    const insert = changes[1] as Insert
    expect(insert.row).toMatchObject({ id: taskId, workspace_id: workspaceId, status: 'todo', priority: 0, labels: ['a', 'b c'], metadata: { k: [1, 2.5] }, due_at: '2026-01-01T10:00:00.000Z' })
    expect(insert.row.description).toBe(description)
    const update = changes[2] as Update
    expect(update.row.status).toBe('in_progress')
    expect(update.unchangedToast).toEqual(['description'])
    expect('description' in update.row).toBe(false)
    const commitLsns = messages.filter((message) => message.kind === 'commit').map((message) => message.commitLsn)
    expect([...commitLsns].sort((a, b) => (a < b ? -1 : 1))).toEqual(commitLsns)
    const begin = messages[0]!
    expect(begin.kind === 'begin' && begin.commitLsn).toBe(messages[2]!.kind === 'commit' && messages[2]!.commitLsn)
    await source.stop()
  })

  test('a multi-row insert whose rows share one WAL record reaches the consumer row by row', async () => {
    const source = sourceFor(pg)
    await waitFor('streaming', () => source.state === 'streaming')
    const workspaceId = await createWorkspace(pg.sql)
    // COPY writes one heap multi-insert record for many rows: they share one LSN.
    const copy = await pg.sql`copy tasks (id, workspace_id, title) from stdin`.writable()
    const ids = [...Array(50)].map(() => crypto.randomUUID())
    copy.write(ids.map((id) => `${id}\t${workspaceId}\tcopied\n`).join(''))
    await new Promise((resolve) => copy.end(resolve))

    const messages = await collect(source, (all) => rowChanges(all).filter((change) => change.table === 'tasks').length >= 50)
    const inserted = rowChanges(messages).filter((change): change is Insert => change.kind === 'insert' && change.table === 'tasks')
    expect(inserted.map((change) => change.row.id)).toEqual(ids)
    expect(new Set(inserted.map((change) => change.lsn)).size).toBeLessThan(ids.length)
    await source.stop()
  })

  test('creates a missing slot with wal2json, and refuses a slot of another plugin', async () => {
    const slot = uniqueSlot('created')
    expect(await readSlot(pg.sql, slot)).toBeNull()
    const created: string[] = []
    const source = sourceFor(pg, { slot, onSlotCreated: async (info) => void created.push(info.snapshotName) })
    await waitFor('streaming', () => source.state === 'streaming')
    expect((await readSlot(pg.sql, slot))?.plugin).toBe('wal2json')
    expect(created).toHaveLength(1)
    expect(created[0]).toMatch(/^[0-9A-F]+-[0-9A-F]+-\d+$/)
    await source.stop()

    const foreign = uniqueSlot('foreign')
    await pg.sql`select pg_create_logical_replication_slot(${foreign}, 'test_decoding')`
    const refused = sourceFor(pg, { slot: foreign })
    expect(refused.read()).rejects.toThrow(`replication slot "${foreign}" exists with plugin test_decoding, not wal2json`)
    await refused.stop()
  })

  test('skips transactions at or below the resume LSN', async () => {
    const slot = uniqueSlot('resume')
    const first = sourceFor(pg, { slot })
    await waitFor('streaming', () => first.state === 'streaming')
    const workspaceId = await createWorkspace(pg.sql, 'one')
    await createWorkspace(pg.sql, 'two')
    const seen = await collect(first, (all) => commits(all) >= 2, { acknowledge: false })
    await first.stop()
    const firstCommit = seen.find((message) => message.kind === 'commit')!
    expect(firstCommit.kind).toBe('commit')

    // The slot was never confirmed, so the server sends both again; the resume LSN drops the first.
    const resumed = sourceFor(pg, { slot, resumeLsn: firstCommit.kind === 'commit' ? firstCommit.commitLsn : 0n })
    await createTask(pg.sql, workspaceId)
    const again = await collect(resumed, (all) => commits(all) >= 2)
    expect(rowChanges(again).map((change) => `${change.table} ${change.kind === 'insert' ? (change.row.name ?? change.row.workspace_id) : ''}`)).toEqual([
      'workspaces two',
      `tasks ${workspaceId}`,
    ])
    await resumed.stop()
  })

  test('confirms only acknowledged commits, and follows the WAL end once nothing is pending', async () => {
    const slot = uniqueSlot('confirm')
    const source = sourceFor(pg, { slot })
    await waitFor('streaming', () => source.state === 'streaming')
    await createWorkspace(pg.sql)
    let lastSeq = 0
    let commitLsn = 0n
    while (!commitLsn) {
      const delivery = await source.read()
      delivery.messages.forEach((message, index) => {
        lastSeq = delivery.firstSeq + index
        if (message.kind === 'commit') commitLsn = message.commitLsn
      })
    }
    const before = await confirmedFlush(pg, slot)
    await Bun.sleep(300)
    expect(await confirmedFlush(pg, slot)).toBe(before)
    expect(source.confirmedLsn).toBeLessThan(commitLsn)

    source.acknowledge(lastSeq)
    await waitFor('confirmed flush at the commit', async () => (await confirmedFlush(pg, slot)) >= commitLsn, 5_000)
    // Writes to an untracked table produce no change for us; the slot still moves past them.
    await pg.sql`create table if not exists untracked (id int)`
    await pg.sql`insert into untracked select generate_series(1, 1000)`
    const [{ lsn }] = await pg.sql<[{ lsn: string }]>`select (pg_current_wal_lsn() - '0/0')::bigint as lsn`
    await waitFor('confirmed flush past untracked writes', async () => (await confirmedFlush(pg, slot)) >= BigInt(lsn), 15_000)
    expect(source.pendingChanges).toBe(0)
    await source.stop()
  })

  test('stops reading while the consumer holds the pending limit, and resumes on acknowledgement', async () => {
    const source = sourceFor(pg, { maxPendingChanges: 100 })
    await waitFor('streaming', () => source.state === 'streaming')
    const workspaceId = await createWorkspace(pg.sql)
    await pg.sql`insert into tasks (id, workspace_id, title) select gen_random_uuid(), ${workspaceId}, 'bulk' from generate_series(1, 5000)`

    await waitFor('the limit reached', () => source.pendingChanges >= 100, 10_000)
    await Bun.sleep(500)
    // Only what the socket had already buffered may pass the limit, never the whole transaction.
    expect(source.pendingChanges).toBeLessThan(1000)
    const messages = await collect(source, (all) => commits(all) >= 2)
    expect(rowChanges(messages).filter((change) => change.table === 'tasks')).toHaveLength(5000)
    await source.stop()
  })

  test('a server restart mid-stream loses nothing', async () => {
    const source = sourceFor(pg)
    await waitFor('streaming', () => source.state === 'streaming')
    const workspaceId = await createWorkspace(pg.sql)
    const seen = new Set<string>()
    let restarted = false
    const writer = (async () => {
      for (let i = 0; i < 40; i++) {
        if (i === 20) {
          await pg.restart()
          restarted = true
        }
        await createTask(pg.sql, workspaceId, { title: `t${i}` }).catch(async () => {
          await Bun.sleep(200)
          await createTask(pg.sql, workspaceId, { title: `t${i}` })
        })
      }
    })()
    await collect(source, (all) => {
      for (const change of rowChanges(all)) if (change.kind === 'insert' && change.table === 'tasks') seen.add(String(change.row.title))
      return seen.size >= 40
    }, { timeoutMs: 60_000 })
    await writer
    expect(restarted).toBe(true)
    expect(seen.size).toBe(40)
    await source.stop()
  })
})
