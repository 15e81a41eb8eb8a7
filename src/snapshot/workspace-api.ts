// The workspace GraphQL API as start-job reads it (contract section 7, workspace-api.graphql): a small
// typed client over fetch, and the cursor pagination of workspaces and of each workspace's tasks.
// Guarantees: every request carries a bearer token from the token source; a 401 gets one renewal and one
// retry, never more; GraphQL `errors` fail with the operation and workspace named; pages come one at a
// time (one more being read ahead), so memory holds two pages whatever the number of tasks; a page read
// ahead that fails fails the caller when it gets there, never the process; a listing whose cursor comes
// back, or whose empty page claims more, fails instead of reading for ever.

import { AbortedError, fetchJson } from './http.ts'
import type { TokenSource } from './token.ts'

export type Workspace = { id: string; name: string; createdAt: string; updatedAt: string }
export type Task = {
  id: string
  workspaceId: string
  title: string
  description: string | null
  status: string
  priority: number
  assigneeId: string | null
  dueAt: string | null
  labels: string[]
  createdAt: string
  updatedAt: string
}
type PageInfo = { hasNextPage: boolean; endCursor: string | null }
type Connection<T> = { nodes: T[]; pageInfo: PageInfo }

/** One page as read: its nodes and when the answer arrived (the events' commitTime). */
export type Page<T> = { nodes: T[]; readAt: Date }

const UNAUTHORIZED = 401
const PAGE_INFO = 'pageInfo { hasNextPage endCursor }'
export const WORKSPACES_QUERY = `query Workspaces($first: Int!, $after: String) {
  workspaces(first: $first, after: $after) { nodes { id name createdAt updatedAt } ${PAGE_INFO} }
}`
export const TASKS_QUERY = `query Tasks($workspaceId: ID!, $first: Int!, $after: String) {
  tasks(workspaceId: $workspaceId, first: $first, after: $after) {
    nodes { id workspaceId title description status priority assigneeId dueAt labels createdAt updatedAt }
    ${PAGE_INFO}
  }
}`

export class GraphqlError extends Error {
  override name = 'GraphqlError'
}

export type WorkspaceApiOptions = {
  url: string
  tokens: TokenSource
  pageSize: number
  signal?: AbortSignal
  onRetry?: (reason: string, delayMs: number) => void
}

export type WorkspaceApi = ReturnType<typeof createWorkspaceApi>

export function createWorkspaceApi(options: WorkspaceApiOptions) {
  /** One operation; `workspaceId` names the workspace in messages. */
  async function query<T>(operation: string, text: string, variables: Record<string, unknown>, workspaceId?: string): Promise<T> {
    const what = `GraphQL ${operation}${workspaceId ? ` of workspace ${workspaceId}` : ''}`
    const send = (token: string) =>
      fetchJson(
        options.url,
        () => ({
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({ operationName: operation, query: text, variables }),
        }),
        { what, signal: options.signal, onRetry: options.onRetry },
      )
    let token = await options.tokens.get()
    let answer = await send(token)
    if (answer.status === UNAUTHORIZED) {
      token = await options.tokens.renew(token)
      answer = await send(token)
      if (answer.status === UNAUTHORIZED) throw new GraphqlError(`${what}: the API refused a freshly issued token (401)`)
    }
    const body = answer.body as { data?: T; errors?: { message?: string }[] } | null
    if (body?.errors?.length) throw new GraphqlError(`${what}: ${body.errors.map((error) => error.message).join('; ')}`)
    if (!answer.ok || !body?.data) throw new GraphqlError(`${what}: HTTP ${answer.status} without data`)
    return body.data
  }

  // The next page is asked for as soon as the current one arrives, so the API works on it while the caller
  // publishes: one page ahead, never more. `listing` names it in messages ("GraphQL Workspaces", "GraphQL
  // Tasks of workspace …").
  async function* pages<T>(listing: string, fetchPage: (after: string | null) => Promise<Connection<T>>): AsyncGenerator<Page<T>> {
    // Each page's time is taken when its answer arrives, not when the caller comes for it.
    const read = (after: string | null) => {
      const reading = fetchPage(after).then((connection) => ({ connection, readAt: new Date() }))
      // Handled now, thrown when awaited: a page ahead that fails while the caller is busy elsewhere would
      // otherwise be an unhandled rejection, and Bun ends the process on one.
      reading.catch(() => {})
      return reading
    }
    // The cursors of this listing so far: one that comes back would read the same pages again, for ever.
    const cursors = new Set<string>()
    let next: ReturnType<typeof read> | null = read(null)
    while (next) {
      const { connection, readAt } = await next
      next = null
      const { hasNextPage, endCursor } = connection.pageInfo
      if (hasNextPage) {
        if (!endCursor) throw new GraphqlError(`${listing}: the API says there is a next page but gives no endCursor`)
        if (!connection.nodes.length) throw new GraphqlError(`${listing}: the API answered an empty page that claims a next one`)
        if (cursors.has(endCursor)) throw new GraphqlError(`${listing}: the API gave cursor ${JSON.stringify(endCursor)} a second time`)
        cursors.add(endCursor)
        if (options.signal?.aborted) throw new AbortedError()
        next = read(endCursor)
      }
      yield { nodes: connection.nodes, readAt }
    }
  }

  return {
    workspaces: () =>
      pages('GraphQL Workspaces', async (after) => (await query<{ workspaces: Connection<Workspace> }>('Workspaces', WORKSPACES_QUERY, { first: options.pageSize, after })).workspaces),
    tasks: (workspaceId: string) =>
      pages(`GraphQL Tasks of workspace ${workspaceId}`, async (after) => (await query<{ tasks: Connection<Task> }>('Tasks', TASKS_QUERY, { workspaceId, first: options.pageSize, after }, workspaceId)).tasks),
  }
}
