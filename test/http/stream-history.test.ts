// The Stream over a long history (contract section 5), seeded straight into `task_events`: a reader of a
// rare type among 200,000 events gets a comment line at least every 15 s while the history is read (FerretDB
// 1.24 sorts the whole range in memory before its first document, whatever the index) and then every
// matching event.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { seedEvents, seededId } from '../support/seed-events.ts'
import { openStream } from '../support/sse.ts'
import { type Connector, type Stack, startConnector, startStack } from '../support/stack.ts'

const EVENTS = 200_000
const RARE_EVERY = 20_000
const RARE_TYPE = 'workspace.snapshot'
const CONTRACT_KEEP_ALIVE_MS = 15_000
// A commit LSN below any the connector gives: under its checkpoint, so all of it is history.
const SEEDED_LSN = 1

let stack: Stack
let connector: Connector

beforeAll(async () => {
  stack = await startStack()
  // Before the connector creates its indexes: FerretDB stores them several times faster so.
  const seeding = performance.now()
  await seedEvents(stack.db, { lsn: SEEDED_LSN, count: EVENTS, type: (n) => (n % RARE_EVERY === RARE_EVERY - 1 ? RARE_TYPE : 'task.updated'), description: 'seeded' })
  console.error(`stream-history: seeded ${EVENTS} events in ${Math.round(performance.now() - seeding)} ms`)
  connector = await startConnector(stack)
}, 600_000)
afterAll(async () => {
  await connector?.kill()
  await stack?.stop()
}, 120_000)

test('a reader of a rare type gets a comment at least every 15 s while the history is read, then every matching event', async () => {
  const expected = Array.from({ length: EVENTS / RARE_EVERY }, (_, k) => seededId(SEEDED_LSN, (k + 1) * RARE_EVERY - 1))
  const opened = performance.now()
  const reader = await openStream(`http://127.0.0.1:${connector.port}/v1/api/ws/Stream?since=0000000000000000-00000000&types=${RARE_TYPE}`)
  expect(reader.status).toBe(200)
  await reader.waitForEvents(expected.length, 600_000)
  const done = performance.now()
  reader.close()
  expect(reader.events.map((event) => event.id)).toEqual(expected)
  // Everything the reader got, comments and events alike: no silence longer than the contract allows.
  const received = [opened, ...reader.comments, ...reader.events.map((event) => event.at)].sort((a, b) => a - b)
  const gaps = received.slice(1).map((at, i) => at - received[i]!)
  console.error(`stream-history: ${expected.length} of ${EVENTS} events in ${Math.round(done - opened)} ms, ${reader.comments.length} comments, longest silence ${Math.round(Math.max(...gaps))} ms`)
  expect(Math.max(...gaps)).toBeLessThanOrEqual(CONTRACT_KEEP_ALIVE_MS)
}, 660_000)
