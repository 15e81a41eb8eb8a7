// start-job against a workspace API having a bad day, with 5-second access tokens: tokens renewed in time
// over a longer run, a revoked token answered by one renewal and a retry, wrong credentials failing the
// run in one line without the secret, 503s and 429s (with Retry-After) ridden out by retries, a body cut
// short or a proxy's HTML page retried, GraphQL errors failing the run with the operation and workspace
// named, even on a page read ahead, and a cursor that comes back ending the run instead of looping.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { retryAfterMs } from '../../src/snapshot/http.ts'
import { startWorkspaceApi, workspaceAt } from '../support/workspace-api.ts'
import { CLIENT, logLines, published, RUN_MS, type SnapshotStack, STACK_START_MS, startJobProcess, startSnapshotStack, target } from '../support/start-job.ts'

const WORKSPACES = 2
const TASKS_PER_WORKSPACE = 6
const TOKEN_TTL_SECONDS = 5
const STACK_FRAME = /^\s+at /m

describe('start-job and the workspace API', () => {
  let stack: SnapshotStack
  beforeAll(async () => {
    stack = await startSnapshotStack({ workspaces: WORKSPACES, tasksPerWorkspace: TASKS_PER_WORKSPACE, accessTokenTtlSeconds: TOKEN_TTL_SECONDS })
  }, STACK_START_MS)
  afterAll(() => stack.stop())

  /** Runs --once and gives its result and the API requests it made. */
  async function once(name: string, flags: string[] = [], client = CLIENT) {
    const to = target(name)
    const from = stack.api.requests.length
    const run = await startJobProcess(stack, to, ['--once', ...flags], { client }).done
    return { to, run, requests: stack.api.requests.slice(from) }
  }

  async function expectComplete(to: { topic: string; database: string }) {
    const messages = await published(stack, to.topic)
    expect(messages.filter(({ event }) => event.type === 'task.snapshot')).toHaveLength(WORKSPACES * TASKS_PER_WORKSPACE)
    expect(messages.at(-1)!.event.type).toBe('snapshot.completed')
  }

  test('5-second tokens over a 15-second run: renewed in time, no 401 ever', async () => {
    // Page size 1: 2 workspace pages and 12 task pages, slowed to make the run last about 15 s.
    stack.api.faults.delayMs = 1_100
    const { to, run, requests } = await once('ttl', ['--page-size', '1']).finally(() => (stack.api.faults.delayMs = 0))
    expect(run.exitCode).toBe(0)
    expect(requests.at(-1)!.at - requests[0]!.at).toBeGreaterThan(3 * TOKEN_TTL_SECONDS * 1000 - 3_000)
    expect(requests.map((request) => request.status)).toEqual(Array(14).fill(200))
    const tokens = new Set(requests.map((request) => request.token))
    expect(tokens.size).toBeGreaterThanOrEqual(3)
    expect(tokens.size).toBeLessThan(requests.length)
    await expectComplete(to)
  }, 60_000)

  test('a 401 is answered by one renewal and one retry', async () => {
    stack.api.faults.unauthorized(1)
    const { to, run, requests } = await once('revoked')
    expect(run.exitCode).toBe(0)
    expect(requests.map((request) => request.status)).toEqual([401, ...Array(requests.length - 1).fill(200)])
    expect(requests[1]!.token).not.toBe(requests[0]!.token)
    await expectComplete(to)
  }, RUN_MS)

  test('a 401 after the renewal fails the run instead of looping', async () => {
    stack.api.faults.unauthorized(2)
    const { run, requests } = await once('revoked-twice')
    expect(run.exitCode).toBe(1)
    expect(requests.map((request) => request.status)).toEqual([401, 401])
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(/^tag-connector: snapshot [0-9A-F]{16} failed: GraphQL Workspaces: the API refused a freshly issued token \(401\)$/)
  }, RUN_MS)

  test('wrong credentials: exit 1, one line with the OAuth2 error, the secret nowhere', async () => {
    const wrong = { clientId: CLIENT.clientId, clientSecret: 'Wr0ng-secret-value-xyz' }
    const { to, run, requests } = await once('wrong', [], wrong)
    expect(run.exitCode).toBe(1)
    expect(requests).toHaveLength(0)
    const lines = run.stderr.trim().split('\n')
    expect(lines.at(-1)).toMatch(/^tag-connector: snapshot [0-9A-F]{16} failed: token endpoint http:\/\/127\.0\.0\.1:\d+\/token refused client snapshots: invalid_client/)
    for (const output of [run.stderr, run.stdout]) {
      expect(output).not.toContain(wrong.clientSecret)
      expect(output).not.toMatch(STACK_FRAME)
    }
    const [record] = await stack.mongoClient.db(to.database).collection('snapshots').find().toArray()
    expect(record).toMatchObject({ outcome: 'failed', tasks: 0 })
    expect(record!.error).toContain('invalid_client')
  }, RUN_MS)

  test('503s and a 429 with Retry-After are retried and the run completes', async () => {
    stack.api.faults.fail(3, 503)
    const unavailable = await once('unavailable')
    expect(unavailable.run.exitCode).toBe(0)
    expect(unavailable.requests.slice(0, 4).map((request) => request.status)).toEqual([503, 503, 503, 200])
    await expectComplete(unavailable.to)

    stack.api.faults.fail(1, 429, '2')
    const limited = await once('limited')
    expect(limited.run.exitCode).toBe(0)
    const [refused, next] = limited.requests
    expect([refused!.status, next!.status]).toEqual([429, 200])
    expect(next!.at - refused!.at).toBeGreaterThanOrEqual(1_900)
    expect(logLines(limited.run.stderr).some((line) => line.level === 'warn' && /retrying in 2000 ms: HTTP 429/.test(line.msg))).toBe(true)
    await expectComplete(limited.to)
  }, RUN_MS)

  test('GraphQL errors fail the run, naming the operation and the workspace', async () => {
    const broken = workspaceAt(1).id
    stack.api.faults.failingWorkspace = broken
    const { to, run } = await once('graphql-error').finally(() => (stack.api.faults.failingWorkspace = null))
    expect(run.exitCode).toBe(1)
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(
      new RegExp(`^tag-connector: snapshot [0-9A-F]{16} failed: GraphQL Tasks of workspace ${broken}: workspace ${broken} is being migrated$`),
    )
    const [record] = await stack.mongoClient.db(to.database).collection('snapshots').find().toArray()
    expect(record).toMatchObject({ outcome: 'failed', workspaces: WORKSPACES, tasks: TASKS_PER_WORKSPACE, drift: null })
  }, RUN_MS)

  test('a body cut short and a proxy\'s HTML page with status 200 are retried, and the run completes', async () => {
    stack.api.faults.garble(1, 'truncated')
    const truncated = await once('truncated')
    expect(truncated.run.exitCode).toBe(0)
    expect(logLines(truncated.run.stderr).some((line) => line.level === 'warn' && /^retrying in \d+ ms: /.test(line.msg))).toBe(true)
    await expectComplete(truncated.to)

    stack.api.faults.garble(1, 'html')
    const html = await once('html')
    expect(html.run.exitCode).toBe(0)
    expect(logLines(html.run.stderr).some((line) => line.level === 'warn' && /retrying in \d+ ms: HTTP 200 with a body that is not JSON \(text\/html\)/.test(line.msg))).toBe(true)
    await expectComplete(html.to)
  }, RUN_MS)

  test('a GraphQL error on the page read ahead fails the run in one line, never the process', async () => {
    // Page size 2 over 4 workspaces: page 2 of the workspaces is read, and fails, while the tasks of page 1 are.
    const api = await startWorkspaceApi({ issuer: stack.oidc, workspaces: 4, tasksPerWorkspace: 6 })
    api.faults.failingWorkspacesPage = 2
    try {
      const to = target('read-ahead')
      const run = await startJobProcess({ ...stack, api }, to, ['--once', '--page-size', '2']).done
      expect(run.exitCode).toBe(1)
      expect(run.stderr).not.toMatch(STACK_FRAME)
      expect(run.stderr.trim().split('\n').at(-1)).toMatch(/^tag-connector: snapshot [0-9A-F]{16} failed: GraphQL Workspaces: page 2 of the workspaces is unavailable$/)
      const [record] = await stack.mongoClient.db(to.database).collection('snapshots').find().toArray()
      expect(record).toMatchObject({ outcome: 'failed', error: 'GraphQL Workspaces: page 2 of the workspaces is unavailable' })
    } finally {
      await api.stop()
    }
  }, RUN_MS)

  test('a task page whose cursor comes back fails the run, naming the workspace', async () => {
    const looping = workspaceAt(1).id
    stack.api.faults.loopingWorkspace = looping
    const { to, run, requests } = await once('looping', ['--page-size', '1']).finally(() => (stack.api.faults.loopingWorkspace = null))
    expect(run.exitCode).toBe(1)
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(
      new RegExp(`^tag-connector: snapshot [0-9A-F]{16} failed: GraphQL Tasks of workspace ${looping}: the API gave cursor "[^"]+" a second time$`),
    )
    // The workspaces' two pages, workspace 0's six task pages and workspace 1's three: nothing after the cursor came back.
    expect(requests).toHaveLength(2 + TASKS_PER_WORKSPACE + 3)
    const [record] = await stack.mongoClient.db(to.database).collection('snapshots').find().toArray()
    expect(record).toMatchObject({ outcome: 'failed' })
  }, RUN_MS)

  test('Retry-After counts in seconds or as an HTTP date', () => {
    const now = Date.UTC(2026, 0, 1)
    expect(retryAfterMs('3', now)).toBe(3_000)
    expect(retryAfterMs(new Date(now + 5_000).toUTCString(), now)).toBe(5_000)
    expect(retryAfterMs(new Date(now - 5_000).toUTCString(), now)).toBe(0)
    expect(retryAfterMs('soon', now)).toBeNull()
  })
})
