// Readers of the Stream that never read (contract section 5): ten, each resuming 20,000 large events back
// (seeded straight into `task_events`), cost a few MB each while they catch up, since history is read only
// as they take it, and each is disconnected after the idle-read timeout (shortened here).

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type Socket, connect } from 'node:net'
import { rssMb } from '../support/memory.ts'
import { waitFor } from '../support/ports.ts'
import { seedEvents, seededId } from '../support/seed-events.ts'
import { openStream } from '../support/sse.ts'
import { type Connector, type Stack, startConnector, startStack } from '../support/stack.ts'

const EVENTS = 20_000
// Frames of some 900 bytes: 18 MB a reader, were its history kept in memory (the kernel holds some 4 MB of it).
const EVENT_BYTES = 512
const READERS = 10
const MAX_RSS_GROWTH_PER_READER_MB = 5
const IDLE_READ_TIMEOUT_S = 5
const SEEDED_LSN = 1

let stack: Stack
let connector: Connector
let base: string

beforeAll(async () => {
  stack = await startStack()
  await seedEvents(stack.db, { lsn: SEEDED_LSN, count: EVENTS, type: () => 'task.updated', description: 'x'.repeat(EVENT_BYTES) })
  connector = await startConnector(stack, { flags: ['--stream-idle-timeout', `${IDLE_READ_TIMEOUT_S}s`] })
  base = `http://127.0.0.1:${connector.port}`
}, 300_000)
afterAll(async () => {
  await connector?.kill()
  await stack?.stop()
}, 120_000)

const streamClients = async () => Number(/^task_connector_stream_clients (\S+)$/m.exec(await (await fetch(`${base}/metrics`)).text())![1])

test('readers that never read cost a few MB each while catching up, and are disconnected after the idle-read timeout', async () => {
  const pid = connector.process.pid
  const since = '0000000000000000-00000000'
  // A reader that reads the same history first: what stays after it (the JIT, the driver's pool) is the idle process.
  const warmStart = performance.now()
  const warm = await openStream(`${base}/v1/api/ws/Stream?since=${since}`)
  await warm.waitForEvents(EVENTS, 300_000)
  console.error(`stream-silent-readers: the warm reader took ${Math.round(performance.now() - warmStart)} ms, first event after ${Math.round(warm.events[0]!.at - warmStart)} ms`)
  expect(warm.events.at(EVENTS - 1)!.id).toBe(seededId(SEEDED_LSN, EVENTS - 1))
  warm.close()
  await waitFor('the warm reader released', async () => (await streamClients()) === 0)
  const idle = rssMb(pid)

  const sockets: Socket[] = []
  const closed = new Set<Socket>()
  for (let i = 0; i < READERS; i++) {
    const socket = connect(connector.port, '127.0.0.1')
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    socket.on('close', () => closed.add(socket))
    socket.on('error', () => {})
    socket.write(`GET /v1/api/ws/Stream?since=${since} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    // It reads nothing: the kernel's buffers fill, then the connector stops reading history for it.
    socket.pause()
    sockets.push(socket)
  }
  let highest = idle
  const sampler = setInterval(() => (highest = Math.max(highest, rssMb(pid))), 50)
  try {
    await waitFor('every silent reader disconnected', () => (connector.log().match(/has read nothing for/g)?.length ?? 0) >= READERS, 480_000)
  } catch (error) {
    console.error(connector.log().split('\n').filter((line) => line.includes('"stream"')).join('\n'))
    throw error
  } finally {
    clearInterval(sampler)
  }
  expect(await streamClients()).toBe(0)
  // Their connections were ended: read now, each comes to its end.
  for (const socket of sockets) socket.resume()
  await waitFor('every silent reader\'s connection to close', () => closed.size === READERS, 30_000)
  console.error(`stream-silent-readers: ${READERS} readers that do not read: RSS ${idle} → highest ${highest} MB`)
  expect(highest - idle).toBeLessThanOrEqual(READERS * MAX_RSS_GROWTH_PER_READER_MB)
}, 900_000)
