// The HTTP API of extract-tasks (contract section 5) on Elysia: the status page (/), /info, /info/history,
// /healthz, /readyz, /metrics, /openapi.json, and the data routes under /v1/api (the Stream and the
// Snapshot). Guarantees: every query parameter is declared and checked before a handler runs; every refusal
// and failure answers in the contract's `{ error, message }` shape, with an unexpected error's detail in the
// log only; the data routes require a valid bearer JWT when an issuer is configured, checked before anything
// else; the Stream is served only by the instance that streams from the slot (not by one standing by).

import { openapi } from '@elysiajs/openapi'
import { Elysia, t } from 'elysia'
import type { Db } from 'mongodb'
import type { TaskEvent } from '../events/events.ts'
import type { Logger } from '../log.ts'
import type { SinkName } from '../pipeline/delivery.ts'
import type { SlotHolder } from '../replication/source.ts'
import { PROGRAM, VERSION } from '../version.ts'
import { type Authorizer, createAuthorizer } from './auth.ts'
import { type History, startHistory } from './history.ts'
import { type LastSnapshot, createLastSnapshot } from './last-snapshot.ts'
import { createMetrics } from './metrics.ts'
import { startReadiness } from './readiness.ts'
import { NDJSON, snapshotResponse } from './snapshot.ts'
import { statusPageResponse } from './status-page.ts'
import { createStatusView } from './status-view.ts'
import { StoreUnavailable, createApiStore } from './store.ts'
import { EVENT_TYPES, type LiveStream, createLiveStream } from './stream.ts'

export type ServiceState = 'starting' | 'streaming' | 'reconnecting' | 'standby' | 'stopping'

export type Status = {
  name: string
  version: string
  uptimeSeconds: number
  slot: string
  state: ServiceState
  confirmedLsn: string
  lastEventId: string | null
  lagBytes: number | null
  eventsTotal: number
  /** While standing by: the process that streams from the slot (its walsender pid, client address, application). */
  slotHolder: SlotHolder | null
  /**
   * Sinks whose writes fail at the moment (the stream is held until they succeed); in /info, also those whose
   * readiness check fails.
   */
  failingSinks: string[]
  /** The slot's `wal_status` and the WAL it retains (from its restart LSN), read with the lag; null before. */
  slotWalStatus: string | null
  retainedWalBytes: number | null
  /** Heartbeat round trip through the WAL, in ms; null before the first one returns. */
  replicationLatencyMs: number | null
  /**
   * Messages read from the slot and not yet durable and published, and whether reading is paused because
   * they reached the limit (backpressure from a slow or failing sink).
   */
  pendingChanges: number
  readingPaused: boolean
  /** Times the replication stream was opened again after it had streamed. */
  reconnects: number
  /** Times the tracked tables' columns were read from the catalog: once per stream, and after a migration. */
  catalogReads: number
  /** Streaming with every sink healthy (the stores' own checks are added by /readyz). */
  ready: boolean
}

// Requests whose target (path and query) is longer are refused before routing: no parameter of this API
// needs more, and a parser should never see megabytes. Bun itself refuses header sections over 16 KB.
export const MAX_TARGET_CHARS = 4_096
const READINESS = { ready: t.Boolean(), state: t.String(), failingSinks: t.Array(t.String()), checks: t.Record(t.String(), t.Boolean()) }
const SNAPSHOT_BODY = t.Object(
  { lsn: t.Nullable(t.String()), lastEventId: t.String(), takenAt: t.String(), workspaces: t.Array(t.Any()), tasks: t.Array(t.Any()) },
  { description: `the current rows; with Accept: ${NDJSON}, a header line then one task per line` },
)
// Canonical text only, as PostgreSQL writes a uuid; upper case is taken and folded to the stored lower case.
const UUID = t.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description: 'a workspace id (UUID)', error: 'must be a UUID' })
const EVENT_ID_PATTERN = '^[0-9A-F]{16}-[0-9A-F]{8}$'
const EVENT_ID = t.String({ pattern: EVENT_ID_PATTERN, description: 'an event id, `<16 hex>-<8 hex>`', error: 'must be an event id (16 hex digits, a dash, 8 hex digits)' })
const TYPE_ALTERNATIVES = EVENT_TYPES.map((type) => type.replace('.', '\\.')).join('|')
const TYPES = t.String({
  pattern: `^(${TYPE_ALTERNATIVES})(,(${TYPE_ALTERNATIVES}))*$`,
  description: `comma list of event types: ${EVENT_TYPES.join(', ')}`,
  error: `must be a comma list of event types (${EVENT_TYPES.join(', ')})`,
})
const ERROR_BODY = t.Object({ error: t.String(), message: t.String() }, { description: 'the contract\'s error shape' })
const ERRORS = { 400: ERROR_BODY, 401: ERROR_BODY, 404: ERROR_BODY, 405: ERROR_BODY, 414: ERROR_BODY, 500: ERROR_BODY, 503: ERROR_BODY }
// A standby takes the slot within seconds of its holder going (src/replication/source.ts retries every second).
const STANDBY_RETRY_AFTER_S = 5
const BEARER_SCHEME = 'bearer'

export type HttpServiceOptions = {
  status: () => Status
  db: Db
  slot: string
  /** Fails unless the Pub/Sub topic is reachable and exists (the publisher's own check, on its channel). */
  checkTopic(): Promise<void>
  auth: { issuer: string | null; audience: string | null }
  maxStreamClients: number
  /** A Stream client that has taken nothing for this long is disconnected. */
  streamIdleTimeoutMs?: number
  log: Logger
}

/** The HTTP service: its routes, and the hooks the pipeline reports to. */
export function createHttpService(options: HttpServiceOptions) {
  const { log } = options
  const store = createApiStore(options.db, options.slot)
  const metrics = createMetrics(options.status)
  const live = createLiveStream({
    store,
    metrics,
    log: log.child({ component: 'stream' }),
    maxClients: options.maxStreamClients,
    idleReadTimeoutMs: options.streamIdleTimeoutMs,
  })
  const readiness = startReadiness([{ name: 'mongo', run: store.ping }, { name: 'pubsub', run: options.checkTopic }], log.child({ component: 'readiness' }))
  const status = createStatusView(options.status, () => readiness.failing)
  const history = startHistory(status)
  const lastSnapshot = createLastSnapshot(options.db)
  const authorize = options.auth.issuer ? createAuthorizer({ issuer: options.auth.issuer, audience: options.auth.audience, log }) : null
  if (!authorize) log.warn('no --auth-issuer: /v1/api/* is open to anyone who reaches this port')

  const app = createHttpApp({ status, history, lastSnapshot, live, store, metrics, readiness, authorize, log })
  return {
    app,
    /** The pipeline's onDurable: live clients and metrics. */
    durable(batch: TaskEvent[]) {
      // Called from the pipeline's acknowledgement chain: a failure here must not stop the stream.
      try {
        // The moment a batch is durable and published, on this host's clock: bench:http measures the Stream's
        // delay from it (its clients stamp their receipts on the same clock).
        if (batch.length) log.debug('batch durable', { firstEventId: batch[0]!.id, lastEventId: batch.at(-1)!.id, events: batch.length, durableAt: performance.timeOrigin + performance.now() })
        metrics.durable(batch)
        live.durable(batch)
      } catch (error) {
        log.error(`live stream: ${(error as Error).stack ?? error}`)
      }
    },
    observeSink: metrics.sinkCall,
    observeOmitted: metrics.omitted,
    /** Another process took the slot: the Stream's clients go where it is streamed. */
    slotLost: () => live.endAll('another process holds the slot'),
    /** This process streams again after a reconnection: clients read what may have been published meanwhile. */
    streamRestarted: () => live.reread(),
    async close() {
      readiness.stop()
      history.stop()
    },
  }
}

type AppParts = {
  status: () => Status
  history: History
  lastSnapshot: () => Promise<LastSnapshot | null>
  live: LiveStream
  store: ReturnType<typeof createApiStore>
  metrics: ReturnType<typeof createMetrics>
  readiness: { ok: boolean; checks: Record<string, boolean> }
  authorize: Authorizer | null
  log: Logger
}

const failure = (status: number, error: string, message: string) => Response.json({ error, message }, { status })
const unavailable = (message: string) =>
  new Response(JSON.stringify({ error: 'unavailable', message }), {
    status: 503,
    headers: { 'content-type': 'application/json', 'retry-after': String(STANDBY_RETRY_AFTER_S) },
  })
const unauthorized = () =>
  new Response(JSON.stringify({ error: 'unauthorized', message: 'a valid bearer token is required' }), {
    status: 401,
    headers: { 'content-type': 'application/json', 'www-authenticate': 'Bearer' },
  })

export function createHttpApp(parts: AppParts) {
  const { status, history, lastSnapshot, live, store, metrics, readiness, authorize, log } = parts
  // normalize: false, so that an unknown query parameter (a misspelt filter) is refused, not dropped.
  return new Elysia({ normalize: false })
    .onRequest(async ({ request }) => {
      const url = request.url
      const target = url.slice(url.indexOf('/', url.indexOf('//') + 2))
      if (target.length > MAX_TARGET_CHARS) return failure(414, 'uri_too_long', `the request target is over ${MAX_TARGET_CHARS} characters`)
      const data = target.startsWith('/v1/api/')
      if (authorize && data) {
        const verdict = await authorize(request.headers.get('authorization'))
        if (verdict === 'refused') return unauthorized()
        if (verdict === 'unavailable') return unavailable('the token issuer cannot be reached and no keys of it are known yet; retry later')
      }
      // The data routes stream their body from MongoDB: a HEAD would run it for nothing.
      if (data && request.method === 'HEAD') return new Response(JSON.stringify({ error: 'method_not_allowed', message: 'only GET is served here' }), { status: 405, headers: { 'content-type': 'application/json', allow: 'GET' } })
      const repeated = repeatedParameter(target)
      if (repeated) return failure(400, 'invalid_parameter', `query parameter ${repeated}: given more than once`)
    })
    .onError(({ code, error, path, request }) => {
      if (error instanceof StoreUnavailable) {
        log.warn(`${path}: refused, ${error.message}`)
        return unavailable(error.message)
      }
      switch (code) {
        case 'VALIDATION':
          return failure(400, 'invalid_parameter', validationMessage(error))
        case 'NOT_FOUND':
          return failure(404, 'not_found', `no route ${new URL(request.url).pathname}`)
        case 'PARSE':
          return failure(400, 'bad_request', 'the request could not be parsed')
        default:
          log.error(`${path}: ${(error as Error)?.stack ?? String(error)}`)
          return failure(500, 'internal', 'internal error; the detail is in the log')
      }
    })
    // The generator documents a route's 200 from its schema alone, as JSON or text/plain: the data routes' media types are set here.
    .onAfterHandle(({ path, response }) => {
      if (path === OPENAPI_PATH) withMediaTypes(response as OpenApiDocument)
    })
    .use(
      openapi({
        provider: null,
        specPath: OPENAPI_PATH,
        documentation: {
          info: { title: PROGRAM, version: VERSION, description: 'task-connector extract-tasks HTTP API (contract section 5)' },
          components: {
            securitySchemes: {
              [BEARER_SCHEME]: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'required on /v1/api/* when --auth-issuer is set: a JWT of that issuer' },
            },
          },
        },
      }),
    )
    .get('/', statusPageResponse, { detail: { summary: 'The status page (HTML, for a person)' } })
    .get(
      '/info',
      async () => {
        const { ready: _ready, ...info } = status()
        return { ...info, lastSnapshot: await lastSnapshot() }
      },
      { detail: { summary: 'Service status' } },
    )
    .get('/info/history', () => history.read(), { detail: { summary: 'The last hour of /info figures, one sample every 5 s (at most 720)' } })
    .get('/healthz', () => ({ status: 'ok' }), { detail: { summary: 'Liveness' } })
    .get(
      '/readyz',
      ({ set }) => {
        const current = status()
        const ready = current.ready && readiness.ok
        if (!ready) set.status = 503
        return { ready, state: current.state, failingSinks: current.failingSinks, checks: readiness.checks }
      },
      {
        response: {
          200: t.Object(READINESS, { description: 'streaming, MongoDB answering, the topic reachable' }),
          503: t.Object(READINESS, { description: 'not ready: the same body says what fails' }),
        },
        detail: { summary: 'Readiness: streaming, MongoDB answering, the topic reachable (200), else 503' },
      },
    )
    .get(
      '/metrics',
      async ({ set }) => {
        set.headers['content-type'] = metrics.registry.contentType
        return metrics.text()
      },
      { detail: { summary: 'Prometheus metrics' } },
    )
    .get(
      '/v1/api/ws/Stream',
      async ({ query, headers, request, server }) => {
        if (status().state === 'standby') return unavailable('this instance stands by: another process streams from the slot; connect to the instance that is ready')
        const after = headers['last-event-id'] ?? query.since ?? null
        const response = await live.open(
          { after, filter: { workspace: query.workspace?.toLowerCase(), types: query.types?.split(',') as typeof EVENT_TYPES[number][] | undefined } },
          request.signal,
        )
        if (!response) return failure(503, 'too_many_clients', 'the stream has as many clients as --max-stream-clients allows; retry later')
        // The server's idle timeout would cut an SSE client between two keep-alives.
        server?.timeout(request, 0)
        return response
      },
      {
        query: t.Object(
          {
            workspace: t.Optional(UUID),
            types: t.Optional(TYPES),
            since: t.Optional(EVENT_ID),
          },
          { additionalProperties: false },
        ),
        headers: t.Object({ 'last-event-id': t.Optional(EVENT_ID) }),
        // The 200 is documented by withMediaTypes: a schema here would be documented as text/plain.
        response: ERRORS,
        detail: {
          summary: 'Server-Sent Events of every durable, published event; resumes after Last-Event-ID or `since`',
          security: [{ [BEARER_SCHEME]: [] }],
        },
      },
    )
    .get(
      '/v1/api/ws/Snapshot',
      ({ query, headers, request, server }) => {
        const format = headers.accept?.includes(NDJSON) ? 'ndjson' : 'json'
        const workspace = query.workspace?.toLowerCase()
        metrics.snapshots.inc({ format })
        // A large snapshot's first rows can take longer than the server's idle timeout to come.
        server?.timeout(request, 0)
        return snapshotResponse(store, workspace, format, (error) => log.warn(`snapshot cut short: ${error.message}`))
      },
      {
        query: t.Object({ workspace: t.Optional(UUID) }, { additionalProperties: false }),
        headers: t.Object({ accept: t.Optional(t.String({ description: `${NDJSON} for the NDJSON form; anything else, JSON` })) }),
        response: ERRORS,
        detail: {
          summary: 'The current workspaces and tasks (no tombstones), with the checkpoint read before the scan',
          security: [{ [BEARER_SCHEME]: [] }],
        },
      },
    )
}

const OPENAPI_PATH = '/openapi.json'
type OpenApiDocument = { paths?: Record<string, { get?: { responses?: Record<string, unknown> } }> }
const DATA_ROUTE_RESPONSES: Record<string, unknown> = {
  '/v1/api/ws/Stream': {
    description: 'Server-Sent Events: `id:` event id, `event:` type, `data:` event JSON; a comment line at least every 15 s',
    content: { 'text/event-stream': { schema: { type: 'string' } } },
  },
  '/v1/api/ws/Snapshot': {
    description: `the current rows as one JSON document; with Accept: ${NDJSON}, a header line (lsn, lastEventId, takenAt, workspaces), then one task a line`,
    content: { 'application/json': { schema: SNAPSHOT_BODY }, [NDJSON]: { schema: { type: 'string' } } },
  },
}

/** The data routes' 200 with their media types, in the generated document. */
function withMediaTypes(document: OpenApiDocument) {
  for (const [path, response] of Object.entries(DATA_ROUTE_RESPONSES)) {
    const responses = document.paths?.[path]?.get?.responses
    if (responses) responses['200'] = response
  }
}

/** The first query parameter given more than once (every parameter of this API takes one value). */
function repeatedParameter(target: string): string | null {
  const query = target.indexOf('?')
  if (query < 0) return null
  const seen = new Set<string>()
  for (const name of new URLSearchParams(target.slice(query)).keys()) {
    if (seen.has(name)) return name
    seen.add(name)
  }
  return null
}

/** One line naming the parameter and what is wrong with it (the schema's own `error` text where it has one). */
function validationMessage(error: unknown): string {
  const { all, type } = error as { all?: { path?: string; summary?: string; schema?: { error?: unknown } }[]; type?: string }
  const first = all?.[0]
  const name = first?.path?.replace(/^\//, '') || 'parameter'
  const problem = typeof first?.schema?.error === 'string' ? first.schema.error : (first?.summary ?? 'is invalid')
  return `${type === 'headers' ? 'header' : 'query parameter'} ${name}: ${problem}`
}
