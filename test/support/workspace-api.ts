// A real workspace GraphQL API for the tests: graphql-http on Bun.serve, serving exactly
// test/fixtures/workspace-api.graphql (the contract's schema), bearer JWTs checked against an OIDC
// issuer's JWKS with jose. Its data is computed from indexes, never stored, so 100,000 tasks cost no
// memory and a test knows every value (`workspaceAt`, `taskAt`). Knobs inject what a real API does on a
// bad day: 503/429 with Retry-After, a 401 for a valid token, slow pages, a GraphQL error, a cursor that
// comes back, a body cut short, a proxy's HTML page.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildSchema } from 'graphql'
import { createHandler } from 'graphql-http/lib/use/fetch'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import type { Task as ApiTask, Workspace as ApiWorkspace } from '../../src/snapshot/workspace-api.ts'
import type { OidcIssuer } from './oidc.ts'

export const WORKSPACE_API_SCHEMA = readFileSync(join(import.meta.dir, '../fixtures/workspace-api.graphql'), 'utf8')
const MAX_FIRST = 500 // the schema's comment: `first` is at most 500
const STATUSES = ['todo', 'in_progress', 'blocked', 'done', 'cancelled']
const EPOCH_MS = Date.UTC(2026, 0, 1)

// The API's objects are exactly what start-job's client reads.
export type { ApiTask, ApiWorkspace }

const hex = (value: number, digits: number) => value.toString(16).padStart(digits, '0')
const iso = (ms: number) => new Date(ms).toISOString()

export function workspaceAt(w: number): ApiWorkspace {
  return { id: `${hex(w, 8)}-0000-4000-a000-000000000000`, name: `Workspace ${w}`, createdAt: iso(EPOCH_MS + w * 1000), updatedAt: iso(EPOCH_MS + w * 2000) }
}

export function taskAt(w: number, t: number): ApiTask {
  return {
    id: `${hex(w, 8)}-0000-4000-8000-${hex(t, 12)}`,
    workspaceId: workspaceAt(w).id,
    title: `Task ${t} of workspace ${w}`,
    description: t % 3 === 0 ? null : `Description of task ${t}`,
    status: STATUSES[t % STATUSES.length]!,
    priority: t % 4,
    assigneeId: t % 2 === 0 ? `${hex(t, 8)}-0000-4000-9000-000000000000` : null,
    dueAt: t % 5 === 0 ? iso(EPOCH_MS + 86_400_000 * 30) : null,
    labels: t % 2 === 0 ? ['a', `l${t % 7}`] : [],
    createdAt: iso(EPOCH_MS + t * 1000),
    updatedAt: iso(EPOCH_MS + t * 1000 + 60_000),
  }
}

export type WorkspaceApiOptions = {
  issuer: OidcIssuer
  /** Required `aud` of the bearer tokens. */
  audience?: string
  workspaces: number
  tasksPerWorkspace: number
}

/** What a test can make the next requests meet. Each counter counts down as requests arrive. */
export type Faults = {
  /** The next n requests answer this status (with Retry-After when given) before anything else. */
  fail(n: number, status: number, retryAfter?: string): void
  /** The next n requests with a valid token answer 401 as if the token were revoked. */
  unauthorized(n: number): void
  /** Every answer waits this long first (0 to stop). */
  delayMs: number
  /** The tasks of this workspace answer a GraphQL error (null to stop). */
  failingWorkspace: string | null
  /** This page of the workspaces (1 for the first) answers a GraphQL error (null to stop). */
  failingWorkspacesPage: number | null
  /** The third task page of this workspace gives the first page's endCursor again (null to stop). */
  loopingWorkspace: string | null
  /** The next n requests answer 200 with a body cut short by a reset, or with a proxy's HTML page. */
  garble(n: number, kind: 'truncated' | 'html'): void
}

export type WorkspaceApi = {
  url: string
  faults: Faults
  /** Every request so far: the status answered, the bearer token it carried, when it came and was answered. */
  requests: { status: number; token: string | null; at: number; answeredAt: number }[]
  totalTasks: number
  stop(): Promise<void>
}

export async function startWorkspaceApi(options: WorkspaceApiOptions): Promise<WorkspaceApi> {
  const jwks = createRemoteJWKSet(new URL(options.issuer.jwksUri), { cooldownDuration: 0 })
  const requests: WorkspaceApi['requests'] = []
  let failing: { n: number; status: number; retryAfter?: string } = { n: 0, status: 0 }
  let revoked = 0
  let garbled: { n: number; kind: 'truncated' | 'html' } = { n: 0, kind: 'html' }

  const page = <T>(total: number, first: number, after: string | null | undefined, at: (index: number) => T) => {
    if (!(first >= 1 && first <= MAX_FIRST)) throw new Error(`first must be from 1 to ${MAX_FIRST}`)
    const start = after ? decodeCursor(after) : 0
    const end = Math.min(total, start + first)
    const nodes: T[] = []
    for (let i = start; i < end; i++) nodes.push(at(i))
    return { nodes, pageInfo: { hasNextPage: end < total, endCursor: end > start ? encodeCursor(end) : after ?? null } }
  }

  const rootValue = {
    workspaces: ({ first, after }: { first: number; after?: string }) => {
      if (faults.failingWorkspacesPage !== null && (after ? decodeCursor(after) : 0) === (faults.failingWorkspacesPage - 1) * first)
        throw new Error(`page ${faults.failingWorkspacesPage} of the workspaces is unavailable`)
      return page(options.workspaces, first, after, workspaceAt)
    },
    tasks: ({ workspaceId, first, after }: { workspaceId: string; first: number; after?: string }) => {
      if (workspaceId === faults.failingWorkspace) throw new Error(`workspace ${workspaceId} is being migrated`)
      const w = workspaceIndex(workspaceId)
      const total = w !== null && w < options.workspaces ? options.tasksPerWorkspace : 0
      const answer = page(total, first, after, (t) => taskAt(w!, t))
      if (workspaceId === faults.loopingWorkspace && after && decodeCursor(after) === 2 * first) answer.pageInfo.endCursor = encodeCursor(first)
      return answer
    },
  }
  const graphql = createHandler({ schema: buildSchema(WORKSPACE_API_SCHEMA), rootValue })

  async function answer(request: Request): Promise<Response> {
    if (garbled.n > 0) {
      garbled.n--
      return garbled.kind === 'html' ? new Response(PROXY_PAGE, { headers: { 'content-type': 'text/html' } }) : cutShort()
    }
    if (failing.n > 0) {
      failing.n--
      return new Response('unavailable', { status: failing.status, headers: failing.retryAfter ? { 'retry-after': failing.retryAfter } : {} })
    }
    const token = bearer(request)
    const verified = token && (await jwtVerify(token, jwks, { issuer: options.issuer.issuer, audience: options.audience ?? 'workspace-api' }).catch(() => null))
    if (!verified || revoked > 0) {
      if (verified) revoked--
      return new Response(null, { status: 401, headers: { 'www-authenticate': 'Bearer' } })
    }
    return graphql(request)
  }

  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      const at = Date.now()
      if (faults.delayMs > 0) await Bun.sleep(faults.delayMs)
      const response = await answer(request)
      requests.push({ status: response.status, token: bearer(request), at, answeredAt: Date.now() })
      return response
    },
  })

  const faults: Faults = {
    fail(n, status, retryAfter) {
      failing = { n, status, retryAfter }
    },
    unauthorized(n) {
      revoked = n
    },
    delayMs: 0,
    failingWorkspace: null,
    failingWorkspacesPage: null,
    loopingWorkspace: null,
    garble(n, kind) {
      garbled = { n, kind }
    },
  }

  return {
    url: `http://127.0.0.1:${server.port}/graphql`,
    faults,
    requests,
    totalTasks: options.workspaces * options.tasksPerWorkspace,
    async stop() {
      await server.stop(true)
    },
  }
}

const PROXY_PAGE = '<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1><p>upstream timed out</p></body></html>'
// How long the cut-short body waits after its first bytes, so that they reach the client before the reset.
const CUT_AFTER_MS = 20

/** A 200 whose JSON body stops halfway: the connection is reset after the first bytes. */
function cutShort(): Response {
  const body = new ReadableStream({
    async pull(controller) {
      controller.enqueue(new TextEncoder().encode('{"data":{"workspaces":{"nodes":['))
      await Bun.sleep(CUT_AFTER_MS)
      // Bun prints this error where the test runs: it is the fault being injected.
      controller.error(new Error('the test API cuts this body short on purpose'))
    },
  })
  return new Response(body, { headers: { 'content-type': 'application/json' } })
}

function bearer(request: Request): string | null {
  const header = request.headers.get('authorization')
  return header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : null
}

function workspaceIndex(id: string): number | null {
  const match = /^([0-9a-f]{8})-0000-4000-a000-000000000000$/.exec(id)
  return match ? parseInt(match[1]!, 16) : null
}

// Opaque to clients, as Relay cursors are: the offset after the page.
const encodeCursor = (offset: number) => btoa(`offset:${offset}`)
function decodeCursor(cursor: string): number {
  const match = /^offset:(\d+)$/.exec(atob(cursor))
  if (!match) throw new Error('invalid cursor')
  return Number(match[1])
}
