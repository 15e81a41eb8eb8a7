// The Stream over a long history (contract section 5), seeded straight into `task_events`: a reader of a
// rare type among 200,000 events gets a comment line at least every 15 s while the history is read (FerretDB
// sorts the whole range in memory before its first document) and then every matching event; ten readers
// that never read, each resuming 20,000 large events back, cost a few MB each and are disconnected after
// the idle-read timeout (shortened here).

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type Socket, connect } from 'node:net'
import { rssMb } from '../support/memory.ts'
import { waitFor } from '../support/ports.ts'
import { openStream } from '../support/sse.ts'
import { type Connector, type Stack, startConnector, startStack } from '../support/stack.ts'

const SMALL_EVENTS = 200_000
const RARE_EVERY = 20_000
const LARGE_EVENTS = 20_000
// 2 KB of data each: 40 MB a reader, were its history kept in memory.
const LARGE_EVENT_BYTES = 2_048
const IDLE_READ_TIMEOUT_S = 10
const SILENT_READERS = 10
const MAX_RSS_GROWTH_PER_READER_MB = 5
const CONTRACT_KEEP_ALIVE_MS = 15_000
const INSERT_BATCH = 10_000
// Ids below any the connector gives (a commit LSN of 1 and 2): under its checkpoint, so all of it is history.
const smallId = (n: number) => `0000000000000001-${n.toString(16).toUpperCase().padStart(8, '0')}`
const largeId = (n: number) => `0000000000000002-${n.toString(16).toUpperCase().padStart(8, '0')}`

let stack: Stack
let connector: Connector
let base: string

/** A stored event as the MongoDB sink writes it. */
function storedEvent(id: string, type: string, description: string) {
  const workspaceId = '00000000-0000-4000-8000-000000000001'
  const taskId = crypto.randomUUID()
  return {
    _id: id, type, source: 'cdc', workspaceId, taskId: type.startsWith('task.') ? taskId : null, lsn: '0/1', xid: 1,
    commitTime: new Date(), data: { id: taskId, workspaceId, title: 'seeded', description }, previous: null,
  }
}

async function seed(count: number, id: (n: number) => string, type: (n: number) => string, description: string) {
  for (let from = 0; from < count; from += INSERT_BATCH)
    await stack.db.collection('task_events').insertMany(
      Array.from({ length: Math.min(INSERT_BATCH, count - from) }, (_, i) => storedEvent(id(from + i), type(from + i), description)) as any[],
      { ordered: false },
    )
}

beforeAll(async () => {
  stack = await startStack()
  connector = await startConnector(stack, { flags: ['--stream-idle-timeout', `${IDLE_READ_TIMEOUT_S}s`] })
  base = `http://127.0.0.1:${connector.port}/v1/api/ws/Stream`
  const seeding = performance.now()
  await seed(SMALL_EVENTS, smallId, (n) => (n % RARE_EVERY === RARE_EVERY - 1 ? 'workspace.snapshot' : 'task.updated'), 'small')
  await seed(LARGE_EVENTS, largeId, () => 'task.updated', 'x'.repeat(LARGE_EVENT_BYTES))
  console.error(`stream-history: seeded ${SMALL_EVENTS + LARGE_EVENTS} events in ${Math.round(performance.now() - seeding)} ms`)
}, 600_000)
afterAll(async () => {
  await connector?.kill()
  await stack?.stop()
}, 120_000)

test('a reader of a rare type gets a comment at least every 15 s while the history is read, then every matching event', async () => {
  const expected = Array.from({ length: SMALL_EVENTS / RARE_EVERY }, (_, k) => smallId((k + 1) * RARE_EVERY - 1))
  const opened = performance.now()
  const reader = await openStream(`${base}?since=0000000000000000-00000000&types=workspace.snapshot`)
  expect(reader.status).toBe(200)
  await reader.waitForEvents(expected.length, 600_000)
  const done = performance.now()
  reader.close()
  expect(reader.events.map((event) => event.id)).toEqual(expected)
  // Everything the reader got, comments and events alike: no silence longer than the contract allows.
  const received = [opened, ...reader.comments, ...reader.events.map((event) => event.at)].sort((a, b) => a - b)
  const gaps = received.slice(1).map((at, i) => at - received[i]!)
  console.error(`stream-history: ${expected.length} of ${SMALL_EVENTS + LARGE_EVENTS} events in ${Math.round(done - opened)} ms, ${reader.comments.length} comments, longest silence ${Math.round(Math.max(...gaps))} ms`)
  expect(Math.max(...gaps)).toBeLessThanOrEqual(CONTRACT_KEEP_ALIVE_MS)
}, 660_000)

test('readers that never read cost a few MB each while catching up, and are disconnected after the idle-read timeout', async () => {
  const pid = connector.process.pid
  const since = largeId(0)
  // A reader that reads the same history first: what stays after it (the JIT, the driver's pool) is the idle process.
  const warm = await openStream(`${base}?since=${since}`)
  await warm.waitForEvents(LARGE_EVENTS - 1, 300_000)
  warm.close()
  await Bun.sleep(1_000)
  const idle = rssMb(pid)

  const closed: boolean[] = []
  const sockets: Socket[] = []
  for (let i = 0; i < SILENT_READERS; i++) {
    const socket = connect(connector.port, '127.0.0.1')
    sockets.push(socket)
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    socket.write(`GET /v1/api/ws/Stream?since=${since} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    // It reads nothing: the kernel's buffers fill, then the connector stops reading history for it.
    socket.pause()
    closed.push(false)
    socket.on('close', () => (closed[i] = true))
    socket.on('error', () => {})
  }
  let highest = idle
  const sampler = setInterval(() => (highest = Math.max(highest, rssMb(pid))), 100)
  try {
    await waitFor('every silent reader disconnected', () => (connector.log().match(/has read nothing for/g)?.length ?? 0) >= SILENT_READERS, (IDLE_READ_TIMEOUT_S + 60) * 1000)
  } finally {
    clearInterval(sampler)
  }
  // Their connections were ended: read now, each comes to its end.
  for (const socket of sockets) socket.resume()
  await waitFor('every silent reader\'s connection to close', () => closed.every(Boolean), 30_000)
  console.error(`stream-history: ${SILENT_READERS} silent readers: RSS ${idle} → highest ${highest} MB`)
  expect(highest - idle).toBeLessThanOrEqual(SILENT_READERS * MAX_RSS_GROWTH_PER_READER_MB)
  expect(Number(/^task_connector_stream_clients (\S+)$/m.exec(await (await fetch(`http://127.0.0.1:${connector.port}/metrics`)).text())![1])).toBe(0)
}, 600_000)
