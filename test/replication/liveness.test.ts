// Long-running behaviour against a server with a 5 s wal_sender_timeout. The three tests run side by
// side on their own slots, since each needs half a minute of wall time.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type PostgresServer, startPostgres } from '../support/postgres.ts'
import { collect, confirmedFlush, countKind, drain, rowChanges, sourceFor, stopSources, uniqueSlot } from '../support/replication.ts'
import { createWorkspace } from '../support/workspace.ts'
import { waitFor } from '../support/ports.ts'

const SENDER_TIMEOUT_S = 5
const HOLD_MS = 30_000
const UNTRACKED_WAL_MB = 200
const RETAINED_WAL_LIMIT_MB = 16
const MB = 1024 * 1024

let pg: PostgresServer
const terminatedSenders = () => (pg.log().match(/terminating walsender process due to replication timeout/g) ?? []).length

beforeAll(async () => {
  pg = await startPostgres({ wal_sender_timeout: `${SENDER_TIMEOUT_S}s`, checkpoint_timeout: '30s' })
}, 120_000)
afterAll(async () => {
  await stopSources()
  await pg?.stop()
}, 120_000)

describe(`with wal_sender_timeout = ${SENDER_TIMEOUT_S} s`, () => {
  test.concurrent('an idle stream survives 30 s and still delivers afterwards', async () => {
    const slot = uniqueSlot('idle')
    const source = sourceFor(pg, { slot, statusIntervalMs: 10_000 })
    await waitFor('streaming', () => source.state === 'streaming')
    const pid = await senderPid(slot)
    await Bun.sleep(HOLD_MS)
    expect(source.state).toBe('streaming')
    expect(await senderPid(slot)).toBe(pid)
    await createWorkspace(pg.sql, 'after the idle time')
    const messages = await collect(source, (all) => rowChanges(all).some((change) => change.kind === 'insert' && change.row.name === 'after the idle time'))
    expect(countKind(messages, 'commit')).toBeGreaterThanOrEqual(1)
    expect(terminatedSenders()).toBe(0)
    await source.stop()
  }, 60_000)

  test.concurrent('a consumer that holds one change unacknowledged for 30 s is not cut off', async () => {
    const slot = uniqueSlot('held')
    const source = sourceFor(pg, { slot, statusIntervalMs: 10_000 })
    await waitFor('streaming', () => source.state === 'streaming')
    const pid = await senderPid(slot)
    await createWorkspace(pg.sql, 'held')
    const held = await source.read()
    const begin = held.messages[0]!
    expect(begin.kind).toBe('begin')
    const commitLsn = begin.kind === 'begin' ? begin.commitLsn : 0n
    await Bun.sleep(HOLD_MS)
    expect(source.state).toBe('streaming')
    expect(await senderPid(slot)).toBe(pid)
    expect(await confirmedFlush(pg, slot)).toBeLessThan(commitLsn)
    const rest = await collect(source, (all) => all.some((message) => message.kind === 'commit'), { acknowledge: false })
    source.acknowledge(held.firstSeq + held.messages.length + rest.length - 1)
    await waitFor('the held commit confirmed', async () => (await confirmedFlush(pg, slot)) >= commitLsn, 5_000)
    await source.stop()
  }, 60_000)

  test.concurrent(`${UNTRACKED_WAL_MB} MB of WAL on untracked tables leaves under ${RETAINED_WAL_LIMIT_MB} MB retained once the writes stop`, async () => {
    const slot = uniqueSlot('untracked')
    const source = sourceFor(pg, { slot })
    await waitFor('streaming', () => source.state === 'streaming')
    // The other tests' tracked changes reach this slot too: a consumer that keeps up acknowledges them.
    const consumer = drain(source)
    await pg.sql`create table if not exists untracked_wal (id bigint, payload text)`
    const [{ start }] = await pg.sql<[{ start: string }]>`select (pg_current_wal_lsn() - '0/0')::bigint as start`
    for (;;) {
      await pg.sql`insert into untracked_wal select g, repeat(md5(g::text), 8) from generate_series(1, 50000) g`
      const [{ written }] = await pg.sql<[{ written: string }]>`select (pg_current_wal_lsn() - '0/0')::bigint - ${start}::bigint as written`
      if (Number(written) >= UNTRACKED_WAL_MB * MB) break
    }
    const retained = async () => {
      await pg.sql`checkpoint`
      const [row] = await pg.sql`select (pg_current_wal_lsn() - restart_lsn)::bigint as bytes from pg_replication_slots where slot_name = ${slot}`
      return Number(row!.bytes)
    }
    await waitFor(`retained WAL under ${RETAINED_WAL_LIMIT_MB} MB`, async () => (await retained()) < RETAINED_WAL_LIMIT_MB * MB, 45_000, 1_000).catch(async (error) => {
      const slots = await pg.sql`select slot_name, restart_lsn::text, confirmed_flush_lsn::text, pg_current_wal_lsn()::text as current from pg_replication_slots`
      throw new Error(`${error.message}: ${JSON.stringify(slots)}`)
    })
    expect(await retained()).toBeLessThan(RETAINED_WAL_LIMIT_MB * MB)
    expect(source.pendingChanges).toBe(0)
    await consumer.stop()
  }, 120_000)
})

async function senderPid(slot: string): Promise<number> {
  const [row] = await pg.sql`select active_pid from pg_replication_slots where slot_name = ${slot}`
  return row?.active_pid ?? -1
}
