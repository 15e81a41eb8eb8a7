// The ceiling of bench:snapshot: a bare loop of start-job's own GraphQL page requests (the same queries,
// page size and pagination) against the same server, parsing each answer and nothing more: no events,
// no Pub/Sub, no drift. Run as a child process, as start-job is, so that neither shares the server's thread.
//   bun scripts/bench/snapshot-ceiling.ts URL TOKEN PAGE_SIZE  → one JSON line {"tasks","ms"}

import { TASKS_QUERY, WORKSPACES_QUERY } from '../../src/snapshot/workspace-api.ts'

const [url, token, pageSize] = process.argv.slice(2) as [string, string, string]
const first = Number(pageSize)

type Connection = { nodes: { id: string }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }

async function page(operationName: string, query: string, variables: Record<string, unknown>): Promise<Connection> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ operationName, query, variables }),
  })
  const body = (await response.json()) as { data: Record<string, Connection> }
  return Object.values(body.data)[0]!
}

async function* all(fetchPage: (after: string | null) => Promise<Connection>) {
  let after: string | null = null
  for (;;) {
    const connection = await fetchPage(after)
    yield connection.nodes
    if (!connection.pageInfo.hasNextPage) return
    after = connection.pageInfo.endCursor
  }
}

const started = performance.now()
let tasks = 0
for await (const workspaces of all((after) => page('Workspaces', WORKSPACES_QUERY, { first, after })))
  for (const workspace of workspaces)
    for await (const nodes of all((after) => page('Tasks', TASKS_QUERY, { workspaceId: workspace.id, first, after }))) tasks += nodes.length
console.log(JSON.stringify({ tasks, ms: performance.now() - started }))
