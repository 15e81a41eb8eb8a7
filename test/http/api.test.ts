// The HTTP API besides the Stream, against a real connector (PostgreSQL, FerretDB, the Pub/Sub emulator):
// the Snapshot against the tables, its convergence with the Stream under writes, input validation and the
// error shape, metrics, the OpenAPI document, and readiness through a MongoDB outage.

import { afterAll, beforeAll, describe, expect, test as bunTest } from 'bun:test'
import type { Document } from 'mongodb'
import { waitFor } from '../support/ports.ts'
import { openStream } from '../support/sse.ts'
import { type Connector, type Stack, lsnValue, publishedEvents, startConnector, startStack, waitCaughtUp } from '../support/stack.ts'
import { applyEvents, projectionOf, rowsById, tableRows as tableRowsOf } from '../support/projection.ts'
import { startWorkload } from '../support/verify.ts'
import { createWorkspace, insertTasks } from '../support/workspace.ts'

// Real servers on a shared machine: each test has a budget of its own, whatever the run's default.
const test = (name: string, body: () => Promise<unknown> | unknown, timeoutMs = 120_000) => bunTest(name, body as () => Promise<void>, timeoutMs)

let stack: Stack
let connector: Connector
let base: string

beforeAll(async () => {
  stack = await startStack()
  connector = await startConnector(stack)
  base = `http://127.0.0.1:${connector.port}`
  // A first workload, so that every test reads a varied table.
  await startWorkload(stack.pg.sql, { seed: 3, changes: 1_000 }).done
  await waitCaughtUp(stack, connector, 120_000)
}, 240_000)
afterAll(async () => {
  await connector?.kill()
  await stack?.stop()
}, 120_000)

const tableRows = (table: 'tasks' | 'workspaces', workspace?: string) => tableRowsOf(stack.pg.sql, table, workspace)
const byId = rowsById

async function ndjsonSnapshot(query = '') {
  const response = await fetch(`${base}/v1/api/ws/Snapshot${query}`, { headers: { accept: 'application/x-ndjson' } })
  expect(response.headers.get('content-type')).toStartWith('application/x-ndjson')
  const [header, ...tasks] = (await response.text()).trimEnd().split('\n').map((line) => JSON.parse(line))
  return { header, tasks }
}

describe('the Snapshot', () => {
  test('JSON and NDJSON equal the tables, whole and per workspace', async () => {
    const json = (await (await fetch(`${base}/v1/api/ws/Snapshot`)).json()) as Document
    expect(json.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
    // The checkpoint as an event id: every event of its commit LSN is covered.
    expect(json.lastEventId).toMatch(/^[0-9A-F]{16}-FFFFFFFF$/)
    expect(lsnValue(json.lsn)).toBe(BigInt('0x' + json.lastEventId.slice(0, 16)))
    expect(Date.parse(json.takenAt)).toBeGreaterThan(Date.now() - 60_000)
    expect(byId(json.tasks)).toEqual(await tableRows('tasks'))
    expect(byId(json.workspaces)).toEqual(await tableRows('workspaces'))
    expect(json.tasks.length).toBeGreaterThan(100)
    // Each task carries its life cycle as stored (contract section 4).
    for (const task of json.tasks) expect(Object.keys(task)).toEqual(expect.arrayContaining(['statusSince', 'timeInStatus', 'statusVisits']))

    const { header, tasks } = await ndjsonSnapshot()
    expect(header.lastEventId).toBe(json.lastEventId)
    expect(byId(tasks)).toEqual(await tableRows('tasks'))
    expect(byId(header.workspaces)).toEqual(await tableRows('workspaces'))

    const workspace = [...(await tableRows('workspaces')).keys()][0]!
    const one = (await (await fetch(`${base}/v1/api/ws/Snapshot?workspace=${workspace}`)).json()) as Document
    expect(byId(one.tasks)).toEqual(await tableRows('tasks', workspace))
    expect(byId(one.workspaces)).toEqual(await tableRows('workspaces', workspace))
    const oneNdjson = await ndjsonSnapshot(`?workspace=${workspace}`)
    expect(byId(oneNdjson.tasks)).toEqual(await tableRows('tasks', workspace))
  })

  test('with writes running, the snapshot plus the Stream from its lastEventId converges to the tables', async () => {
    const workspaceId = await createWorkspace(stack.pg.sql, 'big')
    await insertTasks(stack.pg.sql, workspaceId, 3_000)
    const workload = startWorkload(stack.pg.sql, { seed: 5, changes: 2_000, perSecond: 400, transactionRows: () => 4 })
    await waitFor('the first writes', () => workload.changes > 0, 30_000, 20)
    const writtenBefore = workload.changes
    const { header, tasks } = await ndjsonSnapshot()
    const stream = await openStream(`${base}/v1/api/ws/Stream?since=${header.lastEventId}`)
    // Writes ran before, during and after the scan.
    expect(writtenBefore).toBeGreaterThan(0)
    expect(workload.changes).toBeLessThan(2_000)
    await workload.done
    await waitCaughtUp(stack, connector)
    const last = [...(await publishedEvents(stack))].map((event) => event.id as string).sort().at(-1)!
    await waitFor('the stream to reach the last event', () => stream.events.at(-1)?.id === last, 30_000)
    stream.close()

    // The client's rule: an event not newer than the row's own lastEventId is already in the row.
    const state = projectionOf({ workspaces: header.workspaces, tasks })
    applyEvents(state, stream.events)
    expect(byId([...state.task.values()])).toEqual(await tableRows('tasks'))
    expect(byId([...state.workspace.values()])).toEqual(await tableRows('workspaces'))
  })
})

describe('input and errors', () => {
  const refusals: [string, Record<string, string>?][] = [
    ['/v1/api/ws/Stream?workspace=nope'],
    ['/v1/api/ws/Snapshot?workspace=urn:uuid:' + crypto.randomUUID()],
    ['/v1/api/ws/Stream?types=task.created,task.exploded'],
    ['/v1/api/ws/Stream?types='],
    ['/v1/api/ws/Stream?since=0000000000000000'],
    ['/v1/api/ws/Stream?workspce=' + crypto.randomUUID()],
    ['/v1/api/ws/Stream?workspace=' + crypto.randomUUID() + '&workspace=' + crypto.randomUUID()],
    ['/v1/api/ws/Stream', { 'last-event-id': 'yesterday' }],
    ['/v1/api/ws/Snapshot?workspace=%00'],
    ['/v1/api/ws/Snapshot?format=xml'],
  ]
  for (const [path, headers] of refusals)
    test(`400 in the contract's shape: ${path}${headers ? ' ' + JSON.stringify(headers) : ''}`, async () => {
      const response = await fetch(base + path, { headers })
      expect(response.status).toBe(400)
      expect(await response.json()).toEqual({ error: 'invalid_parameter', message: expect.stringMatching(/^(query parameter|header) \S+: .+/) })
    })

  test('a workspace id in upper case is read as the stored (lower-case) id', async () => {
    const workspace = [...(await tableRows('workspaces')).keys()][0]!
    const upper = (await (await fetch(`${base}/v1/api/ws/Snapshot?workspace=${workspace.toUpperCase()}`)).json()) as Document
    expect(upper.tasks.length).toBeGreaterThan(0)
    expect(byId(upper.tasks)).toEqual(await tableRows('tasks', workspace))
  })

  test('HEAD on the Stream and the Snapshot answers 405 at once, and opens no stream', async () => {
    for (const path of ['/v1/api/ws/Stream?since=0000000000000000-00000000', '/v1/api/ws/Snapshot']) {
      const response = await fetch(base + path, { method: 'HEAD' })
      expect(response.status).toBe(405)
      expect(response.headers.get('allow')).toBe('GET')
    }
    const metrics = await (await fetch(`${base}/metrics`)).text()
    expect(metrics).toMatch(/^task_connector_stream_clients 0$/m)
  })

  test('an unknown route answers 404 in the same shape', async () => {
    const response = await fetch(`${base}/v1/api/ws/Nothing`)
    expect(response.status).toBe(404)
    expect(await response.json()).toEqual({ error: 'not_found', message: 'no route /v1/api/ws/Nothing' })
  })

  test('huge query strings and headers are refused, and the server keeps serving', async () => {
    const longQuery = await fetch(`${base}/v1/api/ws/Snapshot?workspace=${'a'.repeat(10_000)}`)
    expect(longQuery.status).toBe(414)
    expect(await longQuery.json()).toMatchObject({ error: 'uri_too_long' })
    const hugeHeader = await fetch(`${base}/v1/api/ws/Snapshot`, { headers: { 'x-padding': 'a'.repeat(1024 * 1024) } }).then(
      (response) => response.status,
      () => 'connection closed',
    )
    expect([431, 'connection closed']).toContain(hugeHeader)
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    expect((await connector.info()).state).toBe('streaming')
  })

  test('without --auth-issuer the API is open, and the start-up log says so once', async () => {
    expect((await fetch(`${base}/v1/api/ws/Snapshot?workspace=${crypto.randomUUID()}`)).status).toBe(200)
    expect(connector.log().match(/no --auth-issuer/g)).toHaveLength(1)
  })
})

describe('metrics and OpenAPI', () => {
  test('/metrics is strict Prometheus text and counts the events by type', async () => {
    const counts = async () => {
      const text = await (await fetch(`${base}/metrics`)).text()
      expectPrometheusText(text)
      return (type: string) => Number(new RegExp(`^task_connector_events_total\\{type="${type.replace('.', '\\.')}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0)
    }
    const before = await counts()
    const published = (await publishedEvents(stack)).length
    const workspaceId = await createWorkspace(stack.pg.sql, 'counted')
    await insertTasks(stack.pg.sql, workspaceId, 25)
    await waitCaughtUp(stack, connector)
    const after = await counts()
    expect((await publishedEvents(stack)).length - published).toBe(26)
    expect(after('task.created') - before('task.created')).toBe(25)
    expect(after('workspace.created') - before('workspace.created')).toBe(1)
    const text = await (await fetch(`${base}/metrics`)).text()
    for (const name of ['process_resident_memory_bytes', 'batches_total', 'batch_events_bucket', 'sink_write_seconds_bucket', 'commit_to_publish_seconds_bucket', 'confirmed_lsn', 'lag_bytes', 'pending_changes', 'reading_paused', 'reconnects_total', 'catalog_reads_total', 'sink_failures_total', 'stream_clients', 'stream_events_sent_total', 'snapshot_requests_total'])
      expect(text).toMatch(new RegExp(`^task_connector_${name}`, 'm'))
    expect(text).toMatch(/^task_connector_sink_write_seconds_count\{sink="mongo",outcome="ok"\} [1-9]/m)
  })

  test('/openapi.json lists every route with its parameters and error shape', async () => {
    const document = (await (await fetch(`${base}/openapi.json`)).json()) as Document
    expect(Object.keys(document.paths).sort()).toEqual(['/', '/healthz', '/info', '/info/history', '/metrics', '/readyz', '/v1/api/ws/Snapshot', '/v1/api/ws/Stream'])
    const stream = document.paths['/v1/api/ws/Stream'].get
    expect(stream.parameters.map((parameter: { name: string; in: string }) => `${parameter.in}:${parameter.name}`).sort()).toEqual(['header:last-event-id', 'query:since', 'query:types', 'query:workspace'])
    expect(JSON.stringify(stream.responses['400'])).toContain('"error"')
    expect(document.paths['/v1/api/ws/Snapshot'].get.parameters.map((parameter: { name: string; in: string }) => `${parameter.in}:${parameter.name}`)).toEqual(['query:workspace', 'header:accept'])
    expect(document.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' })
    for (const path of ['/v1/api/ws/Stream', '/v1/api/ws/Snapshot']) {
      expect(document.paths[path].get.security).toEqual([{ bearer: [] }])
      expect(Object.keys(document.paths[path].get.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '414', '503']))
    }
    expect(Object.keys(stream.responses['200'].content)).toEqual(['text/event-stream'])
    expect(Object.keys(document.paths['/v1/api/ws/Snapshot'].get.responses['200'].content).sort()).toEqual(['application/json', 'application/x-ndjson'])
    expect(Object.keys(document.paths['/readyz'].get.responses).sort()).toEqual(['200', '503'])
  })
})

describe('readiness', () => {
  test('/readyz turns 503 when FerretDB stops while the connector is idle, and 200 again after', async () => {
    const readyz = async () => {
      const response = await fetch(`${base}/readyz`)
      return { status: response.status, body: (await response.json()) as { checks: Record<string, boolean> } }
    }
    expect(await readyz()).toMatchObject({ status: 200, body: { checks: { mongo: true, pubsub: true } } })
    await stack.mongo.stop()
    try {
      // The background check finds it within its interval and deadline, without a write to fail first.
      await waitFor('/readyz to say 503 for MongoDB', async () => {
        const { status, body } = await readyz()
        return status === 503 && body.checks.mongo === false
      }, 20_000, 250)
      // A reader that connects now is told at once, not answered 200 and then cut.
      for (const path of ['/v1/api/ws/Stream?since=0000000000000000-00000000', '/v1/api/ws/Stream', '/v1/api/ws/Snapshot']) {
        const asked = performance.now()
        const response = await fetch(base + path)
        expect({ path, status: response.status, body: await response.json() }).toEqual({ path, status: 503, body: { error: 'unavailable', message: expect.any(String) } })
        expect(performance.now() - asked).toBeLessThan(10_000)
      }
    } finally {
      await stack.mongo.restart()
    }
    await waitFor('/readyz to say 200 again', async () => (await readyz()).status === 200, 30_000, 250)
  }, 90_000)
})

/**
 * Every line is a comment (HELP/TYPE) or `name{labels} value`, every sample of a declared metric. prom-client
 * writes NaN as `Nan`, which Prometheus reads (its float parser ignores case).
 */
function expectPrometheusText(text: string) {
  const declared = new Set<string>()
  for (const line of text.trimEnd().split('\n')) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type) {
      declared.add(type[1]!)
      continue
    }
    if (line === '' || line.startsWith('# HELP ')) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.]+(e[+-]?[0-9]+)?|[Nn]a[Nn]|[+-]Inf)$/.exec(line)
    expect(sample ? null : line).toBeNull()
    const name = sample![1]!
    expect([name, name.replace(/_(bucket|sum|count)$/, '')].some((candidate) => declared.has(candidate)) ? name : `undeclared ${name}`).toBe(name)
  }
}
