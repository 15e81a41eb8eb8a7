// The Stream of a high-availability pair (contract section 5): the instance standing by answers it 503 with
// Retry-After; the instance that loses the slot to the other ends its streams, so that a reader that
// resumes with Last-Event-ID wherever /readyz says 200 gets every event once, in order, across a takeover
// and the old holder's return (frozen with SIGSTOP while its walsender is ended, then thawed).

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { waitFor } from '../support/ports.ts'
import { followStream } from '../support/sse.ts'
import { type Connector, type Stack, publishedEvents, startConnector, startStack, waitCaughtUp } from '../support/stack.ts'
import { startWorkload } from '../support/verify.ts'

const SEED = Number(process.env.TC_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31))
const CHANGES = 3_000
const WRITE_RATE = 300
const STREAM = '/v1/api/ws/Stream'

let stack: Stack
let first: Connector
let second: Connector
const base = (connector: Connector) => `http://127.0.0.1:${connector.port}`
const state = async (connector: Connector) => (await connector.info()).state as string

beforeAll(async () => {
  console.error(`stream-failover: seed ${SEED} (TC_TEST_SEED=${SEED} repeats this run)`)
  stack = await startStack()
  first = await startConnector(stack)
  second = await startConnector(stack, { until: 'answering' })
  await waitFor('the second instance to stand by', async () => (await state(second)) === 'standby', 30_000)
}, 120_000)
afterAll(async () => {
  first?.process.kill('SIGCONT')
  await Promise.all([first?.kill('SIGKILL'), second?.kill('SIGKILL')])
  await stack?.stop()
}, 120_000)

async function expectStandbyRefusal(connector: Connector) {
  const response = await fetch(`${base(connector)}${STREAM}?since=0000000000000000-00000000`)
  expect(response.status).toBe(503)
  expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0)
  expect(await response.json()).toEqual({ error: 'unavailable', message: expect.stringContaining('stands by') })
}

test('the instance standing by answers the Stream 503 with Retry-After', async () => {
  await expectStandbyRefusal(second)
})

test('a reader that follows /readyz gets every event once, in order, across a takeover and the old holder\'s return', async () => {
  const reader = followStream([base(first), base(second)], STREAM, '0000000000000000-00000000')
  const workload = startWorkload(stack.pg.sql, { seed: SEED, changes: CHANGES, perSecond: WRITE_RATE })
  await waitFor('a third of the workload read from the first instance', () => workload.changes >= CHANGES / 3 && reader.events.length > 0, 60_000, 50)
  expect(reader.served).toEqual([base(first)])

  // The first instance is frozen and its walsender ended: the second takes the slot and publishes.
  first.process.kill('SIGSTOP')
  await stack.pg.sql`select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = 'task_connector' and active_pid is not null`
  await waitFor('the second instance to stream', async () => (await state(second)) === 'streaming', 60_000, 50)
  const writtenAtTakeover = workload.changes
  await waitFor('the second instance to publish part of the workload', () => workload.changes >= writtenAtTakeover + WRITE_RATE, 60_000, 50)
  // Thawed, the first finds the slot taken, stands by, and ends its reader's stream.
  first.process.kill('SIGCONT')
  await waitFor('the first instance to stand by', async () => (await state(first)) === 'standby', 60_000, 50)
  await workload.done
  await waitCaughtUp(stack, second, 120_000)

  const published = [...new Set((await publishedEvents(stack)).map((event) => event.id as string))].sort()
  await waitFor(`the reader to reach ${published.at(-1)}`, () => reader.events.at(-1)?.id === published.at(-1), 60_000, 50).finally(() => reader.stop())
  const ids = reader.events.map((event) => event.id)
  console.error(`stream-failover: ${ids.length} events read over ${reader.served.length} streams`)
  expect(ids.length).toBe(published.length)
  expect(ids).toEqual(published)
  expect(reader.served.at(-1)).toBe(base(second))
  await expectStandbyRefusal(first)
}, 420_000)
