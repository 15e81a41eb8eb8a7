// The status page (GET /) in a real browser against a connector on real servers: it loads with no error and
// no request to another host, follows the Stream, names a failing sink an idle connector learns of only from
// its readiness checks, draws its charts from /info/history, asks for a token when the Stream needs one, says
// so on a standby, and keeps working through a restart of the connector. A screenshot of each state is
// written under test-output/status-page/.

import { afterAll, afterEach, beforeAll, describe, expect, test as bunTest } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'puppeteer-core'
import { launchBrowser } from '../support/browser.ts'
import { type OidcIssuer, startOidcIssuer } from '../support/oidc.ts'
import { type Connector, type Stack, startConnector, startStack } from '../support/stack.ts'
import { createTask, createWorkspace } from '../support/workspace.ts'

// Real servers and a browser on a shared machine: each test has a budget of its own.
const test = (name: string, body: () => Promise<unknown>, timeoutMs = 120_000) => bunTest(name, body as () => Promise<void>, timeoutMs)

export const SCREENSHOTS = join(import.meta.dir, '../../test-output/status-page')
/** The bounds: the header says streaming, and a new row shows, within 5 s. */
const SHOWN_WITHIN_MS = 5_000
/** The readiness check runs every 5 s with a 3 s deadline: a frozen MongoDB is named within 15 s. */
const FAILING_SINK_SHOWN_WITHIN_MS = 15_000
/** After the thaw: the next check passes (5 s), and the page polls every 5 s. */
const GREEN_AGAIN_WITHIN_MS = 30_000
/** Three samples of /info/history (one every 5 s: two rates, two points of each line) and a poll of the page. */
const CHARTS_DRAWN_WITHIN_MS = 20_000
const PAGE_BUDGET_BYTES = 100_000

let stack: Stack
let connector: Connector
let browser: Browser
let workspaceId: string
/** The page the first test opens; the next ones go on with it, as a person watching would. */
let watched: Page
const connectors: Connector[] = []

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true })
  ;[stack, browser] = await Promise.all([startStack(), launchBrowser()])
  workspaceId = await createWorkspace(stack.pg.sql, 'status page')
  // A start-job run, as the page shows it under "Last start-job run".
  const finishedAt = new Date()
  await stack.db.collection('snapshots').insertOne({
    _id: '20261207T000000000Z-test' as any, startedAt: new Date(finishedAt.getTime() - 60_000), finishedAt, outcome: 'completed', workspaces: 1, tasks: 3,
    drift: { missing: 1, extra: 0, stale: 2, examples: { missing: ['00000000-0000-4000-8000-000000000001'], extra: [], stale: [] } },
  })
  connector = await start()
}, 180_000)
afterEach(() => stack.mongo.thaw())
afterAll(async () => {
  await browser?.close()
  for (const each of connectors) await each.kill('SIGKILL')
  await stack?.stop()
}, 120_000)

async function start(options: Parameters<typeof startConnector>[1] = {}) {
  const started = await startConnector(stack, options)
  connectors.push(started)
  return started
}

type Opened = { page: Page; consoleErrors: string[]; foreignRequests: string[] }

async function open(port: number): Promise<Opened> {
  const page = await browser.newPage()
  // The height of the page with its 50 events' first rows: the screenshot is the README's picture.
  await page.setViewport({ width: 1200, height: 560 })
  const consoleErrors: string[] = []
  const foreignRequests: string[] = []
  page.on('console', (message) => message.type() === 'error' && consoleErrors.push(message.text()))
  page.on('pageerror', (error) => consoleErrors.push(String(error)))
  page.on('request', (request) => {
    const url = new URL(request.url())
    if (url.protocol !== 'data:' && url.host !== `127.0.0.1:${port}`) foreignRequests.push(request.url())
  })
  await page.goto(`http://127.0.0.1:${port}/`)
  return { page, consoleErrors, foreignRequests }
}

const text = (page: Page, selector: string) => page.$eval(selector, (element) => element.textContent ?? '')

/** Waits until the element's text passes `accept`; fails with the text it last had. */
async function waitForText(page: Page, selector: string, accept: (text: string) => boolean, timeoutMs: number, what: string) {
  const deadline = performance.now() + timeoutMs
  let last = ''
  while (performance.now() < deadline) {
    last = await text(page, selector).catch(() => '')
    if (accept(last)) return performance.now()
    await Bun.sleep(100)
  }
  throw new Error(`${what}: not within ${timeoutMs} ms; ${selector} says ${JSON.stringify(last)}`)
}

const screenshot = (page: Page, name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) as `${string}.png` })

describe('the status page', () => {
  test('it loads: no console error, no request to another host, the header says streaming within 5 s', async () => {
    const response = await fetch(`http://127.0.0.1:${connector.port}/`)
    const body = await response.text()
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(response.headers.get('content-security-policy')).toMatch(/default-src 'none'.*connect-src 'self'/)
    expect(new TextEncoder().encode(body).length).toBeLessThan(PAGE_BUDGET_BYTES)
    const history = (await (await fetch(`http://127.0.0.1:${connector.port}/info/history`)).json()) as { intervalMs: number; samples: Record<string, unknown>[] }
    expect(history.intervalMs).toBe(5_000)
    expect(history.samples.length).toBeGreaterThanOrEqual(1)
    expect(Object.keys(history.samples.at(-1)!).sort()).toEqual(['at', 'eventsTotal', 'failingSinks', 'lagBytes', 'pendingChanges', 'replicationLatencyMs', 'state'])

    const started = performance.now()
    const { page, consoleErrors, foreignRequests } = await open(connector.port)
    watched = page
    const shown = await waitForText(page, '#state', (state) => state === 'streaming', SHOWN_WITHIN_MS, 'the header to say streaming')
    expect(shown - started).toBeLessThan(SHOWN_WITHIN_MS)
    expect(await text(page, '#failing')).toBe('none')
    // Read with the lag, every 5 s.
    await waitForText(page, '#slot', (slot) => /^task_connector · wal_status (reserved|extended) · retains \d/.test(slot), 2 * SHOWN_WITHIN_MS, 'the slot')
    expect(await text(page, '#lsn')).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
    await waitForText(page, '#snapshot', (run) => run.startsWith('completed'), SHOWN_WITHIN_MS, 'the last start-job run')
    expect(await text(page, '#snapshot')).toContain('drift: 1 missing, 0 extra, 2 stale')
    await waitForText(page, '#stream-note', (note) => note === '(live)', SHOWN_WITHIN_MS, 'the Stream to be read')
    // No token asked for where none is needed: the form is not displayed at all.
    expect(await page.evaluate(`getComputedStyle(document.getElementById('token-form')).display`)).toBe('none')
    expect({ consoleErrors, foreignRequests }).toEqual({ consoleErrors: [], foreignRequests: [] })
  })

  test('it follows the stream: a row inserted in PostgreSQL appears in the event list within 5 s', async () => {
    const page = watched
    await waitForText(page, '#stream-note', (note) => note === '(live)', SHOWN_WITHIN_MS, 'the Stream to be read')
    const inserted = performance.now()
    const taskId = await createTask(stack.pg.sql, workspaceId, { title: 'Check the tide tables', status: 'todo' })
    const shown = await waitForText(page, '#events', (list) => list.includes(taskId.slice(0, 8)), SHOWN_WITHIN_MS, 'the new task in the event list')
    expect(shown - inserted).toBeLessThan(SHOWN_WITHIN_MS)
    await stack.pg.sql`update tasks set status = 'in_progress' where id = ${taskId}`
    await waitForText(page, '#events', (list) => list.includes('todo → in_progress'), SHOWN_WITHIN_MS, 'the transition in the event list')
    // The update's transition carries how long the task was in its old status (issue #19's timing).
    expect(await page.$eval('#events tr', (row) => [...row.cells].map((cell) => cell.textContent))).toEqual([
      expect.stringMatching(/^\d\d:\d\d:\d\d$/), 'task.updated', `Check the tide tables · ${taskId.slice(0, 8)}`,
      expect.stringMatching(/^todo → in_progress after \d+\.\d s in todo$/),
    ])
  })

  test('the charts draw: lag, heartbeat latency and events a second have points from /info/history', async () => {
    const page = watched
    const points = (name: string) => page.$$eval(`#chart-${name} polyline`, (lines) => lines.reduce((sum, line) => sum + (line.getAttribute('points') ?? '').split(' ').filter(Boolean).length, 0))
    const deadline = performance.now() + CHARTS_DRAWN_WITHIN_MS
    let counts = { lag: 0, latency: 0, rate: 0 }
    while (performance.now() < deadline) {
      counts = { lag: await points('lag'), latency: await points('latency'), rate: await points('rate') }
      if (counts.lag >= 2 && counts.latency >= 2 && counts.rate >= 2) break
      await Bun.sleep(250)
    }
    expect({ lag: counts.lag >= 2, latency: counts.latency >= 2, rate: counts.rate >= 2, counts }).toEqual({ lag: true, latency: true, rate: true, counts })
    await screenshot(page, 'streaming')
  })

  test('it shows a failing sink: MongoDB frozen under an idle connector is named within 15 s, and green again after the thaw', async () => {
    const page = watched
    await waitForText(page, '#failing', (failing) => failing === 'none', SHOWN_WITHIN_MS, 'no failing sink')
    const frozen = performance.now()
    stack.mongo.freeze()
    const named = await waitForText(page, '#failing', (failing) => failing.includes('mongo'), FAILING_SINK_SHOWN_WITHIN_MS, 'the header to name mongo')
    expect(named - frozen).toBeLessThan(FAILING_SINK_SHOWN_WITHIN_MS)
    expect(await page.$eval('#failing', (element) => element.className)).toBe('bad')
    await screenshot(page, 'sink-failing')
    stack.mongo.thaw()
    await waitForText(page, '#failing', (failing) => failing === 'none', GREEN_AGAIN_WITHIN_MS, 'the header green again')
    await waitForText(page, '#state', (state) => state === 'streaming', GREEN_AGAIN_WITHIN_MS, 'streaming again')
  })

  test('it keeps working through a restart: says the connector is unreachable, then resumes the Stream after the last event it showed', async () => {
    const page = watched
    await waitForText(page, '#stream-note', (note) => note === '(live)', SHOWN_WITHIN_MS, 'the Stream to be read')
    const before = await createTask(stack.pg.sql, workspaceId, { title: 'before the restart' })
    await waitForText(page, '#events', (list) => list.includes(before.slice(0, 8)), SHOWN_WITHIN_MS, 'the task made before the restart')
    const port = connector.port
    expect(await connector.kill()).toBe(0)
    await waitForText(page, '#banner', (banner) => banner.startsWith('Cannot reach the connector since'), 2 * SHOWN_WITHIN_MS, 'the page to say it cannot reach the connector')
    expect(await text(page, '#state')).toBe('unreachable')
    // Made while the connector is down: the page must get it from the history when it resumes.
    const during = await createTask(stack.pg.sql, workspaceId, { title: 'during the restart' })
    connector = await start({ port })
    await waitForText(page, '#state', (state) => state === 'streaming', 2 * SHOWN_WITHIN_MS, 'the header streaming again')
    await waitForText(page, '#events', (list) => list.includes(during.slice(0, 8)), 3 * SHOWN_WITHIN_MS, 'the task made during the restart')
    expect(await page.$$eval('#events tr', (rows) => rows.filter((row) => row.textContent!.includes('before the restart')).length)).toBe(1)
    expect(await page.$eval('#banner', (element) => element.hidden)).toBe(true)
  })

  test('on a standby, it says so instead of showing errors', async () => {
    const standby = await start({ until: 'answering' })
    const { page } = await open(standby.port)
    await waitForText(page, '#state', (state) => state === 'standby', 2 * SHOWN_WITHIN_MS, 'the header to say standby')
    await waitForText(page, '#banner', (banner) => banner.startsWith('Standby: another process streams from the slot'), SHOWN_WITHIN_MS, 'the standby banner')
    await waitForText(page, '#stream-note', (note) => note.startsWith('(standby'), 2 * SHOWN_WITHIN_MS, 'the event list to say standby')
    await standby.kill()
  })
})

describe('the status page with --auth-issuer', () => {
  let issuer: OidcIssuer
  let guarded: Connector

  beforeAll(async () => {
    issuer = await startOidcIssuer({ clients: [{ clientId: 'page', clientSecret: 'page-secret' }] })
    // A slot of its own, so that it streams beside the other connector rather than standing by.
    guarded = await start({ flags: ['--auth-issuer', issuer.issuer, '--slot', 'page_auth'] })
  }, 180_000)
  afterAll(() => issuer?.stop(), 60_000)

  test('the event list asks for a token, refuses a bad one, and follows the Stream with a good one', async () => {
    const { page } = await open(guarded.port)
    await page.waitForSelector('#token-form:not([hidden])', { timeout: 2 * SHOWN_WITHIN_MS })
    await page.type('#token', 'not-a-token')
    await page.click('#token-form button')
    await waitForText(page, '#token-note', (note) => note === 'That token was refused.', SHOWN_WITHIN_MS, 'the bad token refused')
    await page.type('#token', await issuer.token())
    await page.click('#token-form button')
    await waitForText(page, '#stream-note', (note) => note === '(live)', SHOWN_WITHIN_MS, 'the Stream to be read with the token')
    expect(await page.$eval('#token-form', (form) => form.hidden)).toBe(true)
    // The token stays in the tab's sessionStorage, nowhere else.
    expect(await page.evaluate('[sessionStorage.length, localStorage.length, document.cookie]')).toEqual([1, 0, ''])
    const taskId = await createTask(stack.pg.sql, workspaceId, { title: 'seen with a token' })
    await waitForText(page, '#events', (list) => list.includes(taskId.slice(0, 8)), SHOWN_WITHIN_MS, 'the new task in the event list')
  })
})
