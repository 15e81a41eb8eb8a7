// Drives a change source in tests: opens it against a test server and collects what it hands out.

import type { DecodedMessage, RowChange } from '../../src/decode/types.ts'
import { type SourceOptions, openSource, type Source } from '../../src/replication/source.ts'
import { testLog } from './log.ts'
import type { PostgresServer } from './postgres.ts'

let slots = 0
export const uniqueSlot = (prefix = 'test') => `${prefix}_${process.pid}_${++slots}`

const open = new Set<Source>()

/** Stops every source the test opened, so that none holds the server's shutdown or a slot. */
export async function stopSources() {
  await Promise.all([...open].map((source) => source.stop()))
  open.clear()
}

export function sourceFor(pg: PostgresServer, overrides: Partial<SourceOptions> = {}): Source {
  const source = openSource({
    connection: pg.options,
    slot: uniqueSlot(),
    schema: 'public',
    tables: ['workspaces', 'tasks'],
    resumeLsn: 0n,
    statusIntervalMs: 10_000,
    reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 },
    log: testLog,
    ...overrides,
  })
  open.add(source)
  return source
}

/** Reads until `done` says so; acknowledges everything read unless `acknowledge` is false. */
export async function collect(
  source: Source,
  done: (messages: DecodedMessage[]) => boolean,
  { acknowledge = true, timeoutMs = 30_000 } = {},
): Promise<DecodedMessage[]> {
  const messages: DecodedMessage[] = []
  const deadline = Date.now() + timeoutMs
  while (!done(messages)) {
    const remaining = Math.max(1, deadline - Date.now())
    const delivery = await Promise.race([source.read(), Bun.sleep(remaining).then(() => null)])
    if (!delivery) throw new Error(`collect timed out with ${messages.length} messages`)
    messages.push(...delivery.messages)
    if (acknowledge && delivery.messages.length) source.acknowledge(delivery.firstSeq + delivery.messages.length - 1)
  }
  return messages
}

/** Reads and acknowledges in the background, as a consumer that keeps up would, until stopped. */
export function drain(source: Source): { stop(): Promise<DecodedMessage[]> } {
  let stopping = false
  const done = collect(source, () => stopping, { timeoutMs: 600_000 })
  return {
    async stop() {
      stopping = true
      // The collector re-checks after its next read: a heartbeat-free stream needs one more message, so stop the source.
      await source.stop()
      return done
    },
  }
}

export const rowChanges = (messages: DecodedMessage[]) =>
  messages.filter((message): message is RowChange => ['insert', 'update', 'delete', 'truncate'].includes(message.kind))

export const countKind = (messages: DecodedMessage[], kind: DecodedMessage['kind']) => messages.filter((message) => message.kind === kind).length

/** The slot's confirmed_flush_lsn as the server sees it. */
export async function confirmedFlush(pg: PostgresServer, slot: string): Promise<bigint> {
  const [row] = await pg.sql`select (confirmed_flush_lsn - '0/0')::bigint as lsn from pg_replication_slots where slot_name = ${slot}`
  return BigInt(row?.lsn ?? -1)
}
