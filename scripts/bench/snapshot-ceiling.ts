// The ceiling of bench:snapshot: a bare loop of what start-job does with nothing of start-job in between.
// It reads the same GraphQL pages (the same queries, page size and cursor pagination, one page read ahead)
// from the same server and publishes the same messages (the events' JSON, attributes and ordering keys)
// with the same Pub/Sub client settings (the emulator's channel, no client retries or bundling, requests of
// up to 1,000 messages, two under way while the next pages are read). No token source, no retries, no
// drift, no MongoDB, no record. Run as a child process, as start-job is, so that neither shares the
// server's thread; the bench clocks it from its spawn to the topic holding its messages.
//   bun scripts/bench/snapshot-ceiling.ts URL TOKEN PAGE_SIZE PUBSUB_HOST PROJECT TOPIC  → one JSON line {"tasks","messages"}

import { PubSub, v1 } from '@google-cloud/pubsub'
import { clientConfig } from '../../src/sinks/pubsub.ts'
import { TASKS_QUERY, WORKSPACES_QUERY } from '../../src/snapshot/workspace-api.ts'

const [url, token, pageSize, host, projectId, topicName] = process.argv.slice(2) as [string, string, string, string, string, string]
const first = Number(pageSize)
// start-job's figures: Pub/Sub's 1,000 messages a request, two requests under way; the sink's call options.
const BATCH = 1_000
const IN_FLIGHT = 2
const CALL_OPTIONS = { timeout: 15_000, retry: null, isBundling: false }

type Node = Record<string, unknown> & { id: string }
type Connection = { nodes: Node[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }
type Message = { data: Buffer; attributes: Record<string, string>; orderingKey: string }

async function page(operationName: string, query: string, variables: Record<string, unknown>): Promise<Read> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ operationName, query, variables }),
  })
  const body = (await response.json()) as { data: Record<string, Connection> }
  return { connection: Object.values(body.data)[0]!, readAt: new Date().toISOString() }
}

type Read = { connection: Connection; readAt: string }

async function* all(fetchPage: (after: string | null) => Promise<Read>): AsyncGenerator<{ nodes: Node[]; readAt: string }> {
  let next: Promise<Read> | null = fetchPage(null)
  while (next) {
    const { connection, readAt }: Read = await next
    next = connection.pageInfo.hasNextPage ? fetchPage(connection.pageInfo.endCursor) : null
    yield { nodes: connection.nodes, readAt }
  }
}

const client = new PubSub(clientConfig({ projectId, topic: topicName, serviceAccountFile: '', createTopic: true, emulatorHost: host }))
const publisher = new v1.PublisherClient((await client.getClientConfig()) as ConstructorParameters<typeof v1.PublisherClient>[0])
const [topic] = await client.createTopic(topicName)
const runId = '0000000000000000'
let ordinal = 0
let tasks = 0
let pending: Message[] = []
const inFlight = new Set<Promise<unknown>>()

function message(type: string, workspaceId: string, taskId: string | null, data: Node, commitTime: string): Message {
  const id = `${runId}-${(ordinal++).toString(16).toUpperCase().padStart(8, '0')}`
  const event = { id, type, source: 'snapshot', workspaceId, taskId, lsn: null, xid: null, commitTime, data, previous: null }
  const attributes: Record<string, string> = { eventId: id, type, source: 'snapshot', workspaceId }
  if (taskId) attributes.taskId = taskId
  return { data: Buffer.from(JSON.stringify(event)), attributes, orderingKey: taskId ?? workspaceId }
}

async function publish(messages: Message[], flush = false) {
  pending.push(...messages)
  if (pending.length < BATCH && !flush) return
  const batch = pending
  pending = []
  if (!batch.length) return
  while (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight)
  const call = publisher.publish({ topic: topic.name, messages: batch }, CALL_OPTIONS)
  const entry = call.finally(() => inFlight.delete(entry))
  inFlight.add(entry)
}

for await (const workspaces of all((after) => page('Workspaces', WORKSPACES_QUERY, { first, after }))) {
  await publish(workspaces.nodes.map((workspace) => message('workspace.snapshot', workspace.id, null, workspace, workspaces.readAt)))
  for (const workspace of workspaces.nodes)
    for await (const { nodes, readAt } of all((after) => page('Tasks', TASKS_QUERY, { workspaceId: workspace.id, first, after }))) {
      tasks += nodes.length
      await publish(nodes.map((task) => message('task.snapshot', workspace.id, task.id, task, readAt)))
    }
}
await publish([], true)
await Promise.all(inFlight)
console.log(JSON.stringify({ tasks, messages: ordinal }))
await publisher.close()
await client.close()
process.exit(0)
