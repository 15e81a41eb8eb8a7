// The change source in a process of its own: memory under a huge transaction, and a SIGKILL mid-stream.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { parseLsn } from '../../src/replication/lsn.ts'
import { type PostgresServer, startPostgres } from '../support/postgres.ts'
import { uniqueSlot } from '../support/replication.ts'
import { createWorkspace, insertTasks } from '../support/workspace.ts'
import { waitFor } from '../support/ports.ts'

const CONSUMER = join(import.meta.dir, '../support/consume.ts')
const BIG_TRANSACTION_ROWS = 1_000_000
const BIG_TRANSACTION_RSS_LIMIT_MB = 150

let pg: PostgresServer

beforeAll(async () => {
  pg = await startPostgres()
}, 120_000)
afterAll(async () => {
  await pg?.stop()
}, 120_000)

type Line = { commit?: string; changes: number; done?: boolean; peakRssMb?: number }

function startConsumer(slot: string, extra: string[]) {
  const child = Bun.spawn(['bun', CONSUMER, '--port', String(pg.port), '--database', pg.database, '--slot', slot, ...extra], {
    stdout: 'pipe',
    stderr: 'inherit',
  })
  const lines: Line[] = []
  const reading = (async () => {
    let rest = ''
    for await (const chunk of child.stdout) {
      rest += new TextDecoder().decode(chunk)
      const parts = rest.split('\n')
      rest = parts.pop()!
      for (const part of parts) if (part) lines.push(JSON.parse(part))
    }
  })()
  return { child, lines, reading }
}

async function createSlot(slot: string) {
  await pg.sql`select pg_create_logical_replication_slot(${slot}, 'wal2json')`
}

describe('consumer process', () => {
  test(`a ${BIG_TRANSACTION_ROWS.toLocaleString('en')}-row transaction streams with peak RSS under ${BIG_TRANSACTION_RSS_LIMIT_MB} MB`, async () => {
    const slot = uniqueSlot('big')
    await createSlot(slot)
    const workspaceId = await createWorkspace(pg.sql)
    await insertTasks(pg.sql, workspaceId, BIG_TRANSACTION_ROWS)
    const consumer = startConsumer(slot, ['--until-changes', String(BIG_TRANSACTION_ROWS + 1)])
    expect(await consumer.child.exited).toBe(0)
    await consumer.reading
    const done = consumer.lines.at(-1)!
    expect(done.done).toBe(true)
    expect(done.changes).toBe(BIG_TRANSACTION_ROWS + 1)
    console.error(`big transaction: ${done.changes} changes, consumer peak RSS ${done.peakRssMb} MB`)
    expect(done.peakRssMb!).toBeLessThan(BIG_TRANSACTION_RSS_LIMIT_MB)
  }, 300_000)

  test('killed with SIGKILL mid-stream and restarted from its last acknowledged LSN, it sees every change again at least once and skips what it had acknowledged', async () => {
    const TRANSACTIONS = 400
    const ROWS = 25
    const workspaceId = await createWorkspace(pg.sql)
    const slot = uniqueSlot('killed')
    await createSlot(slot)
    const writer = (async () => {
      for (let i = 0; i < TRANSACTIONS; i++) await insertTasks(pg.sql, workspaceId, ROWS, `batch ${i}`)
    })()

    const first = startConsumer(slot, ['--report-commits'])
    await waitFor('some acknowledged commits', () => first.lines.length >= 50, 60_000)
    first.child.kill('SIGKILL')
    await first.child.exited
    await first.reading
    await writer
    const lastAcknowledged = first.lines.at(-1)!.commit!
    const acknowledged = parseLsn(lastAcknowledged)
    const acknowledgedCommits = first.lines.length

    const second = startConsumer(slot, ['--report-commits', '--resume', lastAcknowledged])
    const remaining = TRANSACTIONS - acknowledgedCommits
    await waitFor('the restarted consumer to see the rest', () => second.lines.length >= remaining, 60_000)
    await Bun.sleep(500)
    second.child.kill('SIGTERM')
    await second.child.exited
    await second.reading

    const secondCommits = second.lines.map((line) => parseLsn(line.commit!))
    expect(secondCommits.every((lsn) => lsn > acknowledged)).toBe(true)
    expect(secondCommits).toHaveLength(remaining)
    expect(second.lines.at(-1)!.changes).toBe(remaining * ROWS)
    const seen = new Set([...first.lines, ...second.lines].map((line) => line.commit))
    expect(seen.size).toBe(TRANSACTIONS)
  }, 120_000)
})
