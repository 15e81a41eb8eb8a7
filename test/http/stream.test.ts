// GET /v1/api/ws/Stream against a real connector (PostgreSQL, FerretDB, the Pub/Sub emulator): what a
// client receives is exactly what Pub/Sub got, resumed without gap or duplicate (from history, then live),
// filtered (live and from history, truncates passing the workspace filter), kept alive, bounded, and
// released on disconnect.

import { afterAll, beforeAll, describe, expect, test as bunTest } from 'bun:test'
import { connect } from 'node:net'
import { MAX_BUFFERED_BYTES } from '../../src/http/stream.ts'
import { openFiles, rssMb } from '../support/memory.ts'
import { waitFor } from '../support/ports.ts'
import { type SseClient, openStream } from '../support/sse.ts'
import { type Connector, type Stack, lsnValue, publishedEvents, startConnector, startStack, waitCaughtUp } from '../support/stack.ts'
import { startWorkload } from '../support/verify.ts'
import { createTask, createWorkspace, insertTasks } from '../support/workspace.ts'

// Real servers on a shared machine: each test has a budget of its own, whatever the run's default.
const test = (name: string, body: () => Promise<unknown> | unknown, timeoutMs = 120_000) => bunTest(name, body as () => Promise<void>, timeoutMs)

const MAX_CLIENTS = 210
// A cycle's client refused with 503 tries again a second later, for up to two minutes (see the cycles test).
const ADMISSION_WITHIN_MS = 120_000
const ADMISSION_RETRY_MS = 1_000
let stack: Stack
let connector: Connector
let base: string
// Opened first on a workspace that never changes (and a type a truncate is not): idle for the whole file, it
// must still get comments.
let idle: SseClient

beforeAll(async () => {
  stack = await startStack()
  connector = await startConnector(stack, { flags: ['--max-stream-clients', String(MAX_CLIENTS)] })
  base = `http://127.0.0.1:${connector.port}/v1/api/ws/Stream`
  idle = await openStream(`${base}?workspace=${crypto.randomUUID()}&types=task.created`)
}, 120_000)
afterAll(async () => {
  idle?.close()
  await connector?.kill()
  await stack?.stop()
}, 120_000)

/** What Pub/Sub got, once per id, in id (commit) order, after `after`. */
async function publishedAfter(after: string) {
  const byId = new Map((await publishedEvents(stack)).filter((event) => event.id > after).map((event) => [event.id, event]))
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1))
}

/**
 * Open files of the connector less its MongoDB connections: the driver's pool grows with the concurrency of
 * the reads (up to its maxPoolSize, 100) and keeps its connections, which is no leak.
 */
function filesBesidesMongo(pid: number) {
  const mongoPort = new URL(stack.mongo.url).port
  const mongoConnections = Bun.spawnSync(['ss', '-tnp', 'state', 'established', 'dport', `= :${mongoPort}`]).stdout.toString().split('\n').filter((line) => line.includes(`pid=${pid},`)).length
  return openFiles(pid) - mongoConnections
}

/** The checkpoint's commit LSN as the 16 hex digits of an event id, or null before the first. */
async function durablePoint(): Promise<string | null> {
  const lsn = (await stack.db.collection('checkpoints').findOne({ _id: 'task_connector' as any }))?.lsn as string | undefined
  return lsn ? lsnValue(lsn).toString(16).toUpperCase().padStart(16, '0') : null
}

const lastPublishedId = async () => (await publishedAfter('')).at(-1)?.id ?? '0000000000000000-00000000'
const streamClients = async () => Number(/^task_connector_stream_clients (\S+)$/m.exec(await (await fetch(`http://127.0.0.1:${connector.port}/metrics`)).text())![1])

describe('the Stream', () => {
  test('a client receives the live events of a workload exactly: ids, order and content as Pub/Sub got them', async () => {
    const before = await lastPublishedId()
    const client = await openStream(base)
    const workload = startWorkload(stack.pg.sql, { seed: 7, changes: 600 })
    await workload.done
    await waitCaughtUp(stack, connector)
    const expected = await publishedAfter(before)
    await client.waitForEvents(expected.length)
    client.close()
    expect(expected.length).toBeGreaterThanOrEqual(600)
    expect(client.events.map((event) => event.id)).toEqual(expected.map((event) => event.id))
    expect(client.events.map((event) => event.event)).toEqual(expected.map((event) => event.type))
    expect(client.events.map((event) => event.data)).toEqual(expected)
  })

  test('a client that reconnects with Last-Event-ID, or with ?since=, gets exactly the events after its last one while writes go on', async () => {
    const before = await lastPublishedId()
    const first = await openStream(`${base}?since=${before}`)
    const workload = startWorkload(stack.pg.sql, { seed: 11, changes: 6_000, perSecond: 1_000, transactionRows: () => 5 })
    const k = 400
    await first.waitForEvents(k)
    first.close()
    const lastSeen = first.events[k - 1]!.id
    // Events after the last seen are durable before the resumers connect (the checkpoint covers them): those
    // come from the history; the workload writes on after they connected: those come live.
    await waitFor('the checkpoint past the last event seen', async () => ((await durablePoint()) ?? '') > lastSeen.split('-')[0]!, 30_000, 20)
    const historyThrough = (await durablePoint())!
    const [byHeader, byQuery] = await Promise.all([openStream(base, { 'last-event-id': lastSeen }), openStream(`${base}?since=${lastSeen}`)])
    expect(workload.changes).toBeLessThan(6_000)
    await workload.done
    await waitCaughtUp(stack, connector)
    const expected = await publishedAfter(before)
    const rest = expected.slice(expected.findIndex((event) => event.id === lastSeen) + 1).map((event) => event.id)
    for (const client of [byHeader, byQuery]) {
      // Nothing is published after the last of `rest`: a duplicate would show before it.
      await client.waitForEvents(rest.length)
      client.close()
      expect(client.events.map((event) => event.id)).toEqual(rest)
    }
    expect(rest.filter((id) => id.split('-')[0]! <= historyThrough).length).toBeGreaterThan(0)
    expect(rest.filter((id) => id.split('-')[0]! > historyThrough).length).toBeGreaterThan(0)
    expect(first.events.slice(0, k).map((event) => event.id)).toEqual(expected.slice(0, k).map((event) => event.id))
  })

  test('filters: one workspace, some types', async () => {
    const { sql } = stack.pg
    const [watched, other] = [await createWorkspace(sql, 'watched'), await createWorkspace(sql, 'other')]
    const before = await lastPublishedId()
    const client = await openStream(`${base}?workspace=${watched}&types=task.created,task.deleted`)
    for (const workspaceId of [watched, other]) {
      const taskId = await createTask(sql, workspaceId)
      await sql`update tasks set status = 'done' where id = ${taskId}`
      await sql`delete from tasks where id = ${taskId}`
    }
    await waitCaughtUp(stack, connector)
    const expected = (await publishedAfter(before)).filter((event) => event.workspaceId === watched && ['task.created', 'task.deleted'].includes(event.type))
    expect(expected.map((event) => event.type)).toEqual(['task.created', 'task.deleted'])
    await client.waitForEvents(2)
    // The same filters over the history: the query's own, not the live path's.
    const fromHistory = await openStream(`${base}?workspace=${watched}&types=task.created,task.deleted&since=${before}`)
    await fromHistory.waitForEvents(2)
    await waitFor('the live client to have nothing more', () => client.comments.length > 1 || client.events.length > 2, 15_000, 50)
    client.close()
    fromHistory.close()
    expect(client.events.map((event) => event.data)).toEqual(expected)
    expect(fromHistory.events.map((event) => event.data)).toEqual(expected)
  })

  test('truncates pass the workspace filter, live and from history', async () => {
    const { sql } = stack.pg
    const watched = await createWorkspace(sql, 'truncated')
    await createTask(sql, watched)
    await waitCaughtUp(stack, connector)
    const before = await lastPublishedId()
    const live = await openStream(`${base}?workspace=${watched}`)
    await sql`truncate tasks`
    await waitCaughtUp(stack, connector)
    const fromHistory = await openStream(`${base}?workspace=${watched}&since=${before}`)
    for (const client of [live, fromHistory]) {
      await client.waitForEvents(1)
      client.close()
      expect(client.events.map((event) => event.event)).toEqual(['tasks.truncated'])
    }
  })

  test('200 concurrent clients each get every event', async () => {
    const before = await lastPublishedId()
    const clients = await Promise.all(Array.from({ length: 200 }, () => openStream(base)))
    const workload = startWorkload(stack.pg.sql, { seed: 13, changes: 300 })
    await workload.done
    await waitCaughtUp(stack, connector)
    const expected = (await publishedAfter(before)).map((event) => event.id)
    await Promise.all(clients.map((client) => client.waitForEvents(expected.length)))
    for (const client of clients) client.close()
    for (const client of clients) expect(client.events.map((event) => event.id)).toEqual(expected)
  })

  test('past --max-stream-clients a client is refused with 503 in the error shape', async () => {
    await waitFor('the earlier clients to be released', async () => (await streamClients()) === 1)
    const clients = await Promise.all(Array.from({ length: MAX_CLIENTS - 1 }, () => openStream(base)))
    const refused = await openStream(base)
    expect(refused.status).toBe(503)
    expect(refused.refusal).toEqual({ error: 'too_many_clients', message: expect.any(String) })
    clients.pop()!.close()
    await waitFor('a place to be released', async () => (await streamClients()) === MAX_CLIENTS - 1)
    const admitted = await openStream(base)
    expect(admitted.status).toBe(200)
    for (const client of [...clients, admitted]) client.close()
  })

  test('1,000 connect/disconnect cycles, and 10 that go with a history cursor open, release everything: clients, open files, memory', async () => {
    await waitFor('the earlier clients to be released', async () => (await streamClients()) === 1)
    const pid = connector.process.pid
    // Each resumes more than a history chunk (500 events) back. Most go as soon as they are answered (their
    // first read of MongoDB is done by then); the first round of each phase is of 5 that take their first
    // chunk before they go, so that a history cursor is open then and must be closed. Those are few: each
    // costs FerretDB a sort of the whole history.
    await insertTasks(stack.pg.sql, await createWorkspace(stack.pg.sql, 'cycles'), 650)
    await waitCaughtUp(stack, connector)
    const since = (await publishedAfter('')).at(-650)!.id
    // A client told 503 comes back, as Retry-After asks. FerretDB 1.24 sorts each history cursor's matches
    // in memory, and a request's first read (the checkpoint, by _id) can wait behind those sorts past its
    // deadline; MongoDB serves that lookup beside them. What this test counts is what the cycles leave behind.
    const admitted = async () => {
      const deadline = performance.now() + ADMISSION_WITHIN_MS
      for (;;) {
        const client = await openStream(`${base}?since=${since}`)
        if (client.refusal === null || (client.refusal as { error?: string }).error !== 'unavailable' || performance.now() > deadline) return client
        await Bun.sleep(ADMISSION_RETRY_MS)
      }
    }
    const cycle = (readFirst: boolean) => async () => {
      const client = await admitted()
      expect(client.refusal).toBeNull()
      if (readFirst) await client.waitForEvents(1, 300_000)
      client.close()
    }
    const inTurn = async (rounds: number) => {
      await Promise.all(Array.from({ length: 5 }, cycle(true)))
      for (let round = 0; round < rounds; round++) await Promise.all(Array.from({ length: 20 }, cycle(false)))
    }
    // A first round warms up what stays (the JIT, the driver's pool), so that growth means a leak.
    await inTurn(10)
    await Bun.sleep(500)
    const [files, rss] = [filesBesidesMongo(pid), rssMb(pid)]
    await inTurn(50)
    await waitFor('every client released', async () => (await streamClients()) === 1, 10_000)
    await Bun.sleep(500)
    console.error(`1,000 cycles: open files ${files} → ${filesBesidesMongo(pid)}, RSS ${rss} → ${rssMb(pid)} MB`)
    expect(filesBesidesMongo(pid)).toBeLessThanOrEqual(files + 5)
    expect(rssMb(pid)).toBeLessThan(rss + 30)
  }, 900_000)

  test('a client that stops reading is disconnected once its buffer is full, with a log line, and memory stays flat', async () => {
    const pid = connector.process.pid
    // Events of 8 KB, 1,000 a transaction: 6,000 (48 MB) fill the kernel's socket buffers and the client's
    // buffer in the connector many times over.
    const flood = async (transactions: number) => {
      const workspaceId = await createWorkspace(stack.pg.sql, 'flood')
      for (let i = 0; i < transactions; i++)
        await stack.pg.sql`
          insert into tasks (id, workspace_id, title, description)
          select gen_random_uuid(), ${workspaceId}, 'flood', repeat(md5(g::text), 250) from generate_series(1, 1000) g`
      await waitCaughtUp(stack, connector, 180_000)
    }
    // The same flood without the slow client first: what the pipeline itself takes for such events.
    await flood(6)
    const rssBefore = rssMb(pid)
    const socket = connect(connector.port, '127.0.0.1')
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    socket.write(`GET /v1/api/ws/Stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    let closed = false
    socket.on('close', () => (closed = true))
    socket.on('error', () => {})
    // It reads nothing: the kernel's buffers fill, then its buffer in the connector.
    socket.pause()
    await waitFor('the stream to open', async () => (await streamClients()) === 2)
    // Twice as much with the slow client: what it was sent and not read would show in RSS at once, 96 MB of it.
    await flood(12)
    await waitFor('the slow client to be dropped', () => /stream client \d+ disconnected: \d+ events/.test(connector.log()), 30_000)
    await waitFor('its place to be released', async () => (await streamClients()) === 1)
    socket.resume()
    await waitFor('its connection to close', () => closed, 10_000)
    const waiting = Number(/disconnected: \d+ events \((\d+) bytes\) waiting/.exec(connector.log())![1])
    console.error(`slow client: dropped with ${waiting} bytes waiting; connector RSS ${rssBefore} → ${rssMb(pid)} MB over 96 MB of events`)
    // Dropped because its buffer was full: the next 8 KB event would not have fitted.
    expect(waiting).toBeGreaterThan(MAX_BUFFERED_BYTES - 16 * 1024)
    // The pipeline's own heap moves by up to some 50 MB over such a flood; a client that kept what it was sent
    // would add the 96 MB on top. Three quarters of that is the bound.
    expect(rssMb(pid)).toBeLessThan(rssBefore + 72)
  }, 420_000)

  test('an idle stream gets a comment line at least every 15 s', () => {
    expect(idle.events).toEqual([])
    expect(idle.comments.length).toBeGreaterThanOrEqual(2)
    const gaps = idle.comments.slice(1).map((at, i) => at - idle.comments[i]!)
    expect(Math.max(...gaps, performance.now() - idle.comments.at(-1)!)).toBeLessThanOrEqual(15_000)
  })
})
