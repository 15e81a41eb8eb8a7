// The whole local stack for end-to-end tests, benchmarks and scripts/dev: PostgreSQL with wal2json,
// FerretDB and the Pub/Sub emulator, each real and on a free port, and extract-tasks as a child process
// that tests can kill and start again.

import { join, resolve } from 'node:path'
import { MongoClient } from 'mongodb'
import { type FerretDb, type FerretDbOptions, startFerretDb } from './ferretdb.ts'
import { freePort, waitFor } from './ports.ts'
import { type PostgresServer, type PostgresSettings, startPostgres } from './postgres.ts'
import { type PubSubEmulator, startPubSubEmulator } from './pubsub.ts'

/**
 * The program under test: the compiled binary when TC_BINARY names one (scripts/test runs the end-to-end tests
 * against `dist/tag-connector` so), else the sources.
 */
export const PROGRAM_COMMAND = process.env.TC_BINARY ? [resolve(process.env.TC_BINARY)] : [process.execPath, join(import.meta.dir, '../../src/cli.ts')]
export const TOPIC = 'taskTopic'
/** The garbage collector's memory budget that the Dockerfile and the systemd unit ship (docs/configuration.md, "Memory"). */
export const CONNECTOR_MEMORY_ENV = { BUN_JSC_forceRAMSize: String(128 * 1024 * 1024) }
export const MONGO_DATABASE = 'task_connector'
const STOP_GRACE_MS = 30_000

export type Stack = {
  pg: PostgresServer
  mongo: FerretDb
  pubsub: PubSubEmulator
  mongoClient: MongoClient
  db: ReturnType<MongoClient['db']>
  stop(): Promise<void>
}

export async function startStack(settings: PostgresSettings = {}, ferretDb: FerretDbOptions = {}): Promise<Stack> {
  const [pg, mongo, pubsub] = await Promise.all([startPostgres(settings), startFerretDb(ferretDb), startPubSubEmulator()])
  const mongoClient = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 30_000 })
  return {
    pg,
    mongo,
    pubsub,
    mongoClient,
    db: mongoClient.db(MONGO_DATABASE),
    async stop() {
      await mongoClient.close().catch(() => {})
      await Promise.all([pg.stop(), mongo.close(), pubsub.stop()])
    },
  }
}

export type Connector = {
  port: number
  process: ReturnType<typeof Bun.spawn>
  /** What the connector logged (JSON lines on stderr). */
  log(): string
  info(): Promise<Record<string, any>>
  kill(signal?: NodeJS.Signals | number): Promise<number>
}

/**
 * Starts `tag-connector extract-tasks` against the stack; resolves once /info says it streams (or `until`:
 * once it answers at all, or at once when spawned).
 * `timeoutMs` covers an initial load when the connector streams only after one.
 */
export async function startConnector(
  stack: Stack,
  { flags = [], env = {}, until = 'streaming', timeoutMs = 120_000, program = PROGRAM_COMMAND, port: given }:
    { flags?: string[]; env?: Record<string, string>; until?: 'spawned' | 'answering' | 'streaming'; timeoutMs?: number; program?: string[]; port?: number } = {},
): Promise<Connector> {
  // A given port: a restarted connector answers where its clients (the status page) look for it.
  const port = given ?? (await freePort())
  const child = Bun.spawn(
    [
      ...program, 'extract-tasks',
      '--db', stack.pg.database, '--pgHost', '127.0.0.1', '--pgPort', String(stack.pg.port), '--user', stack.pg.user,
      '--mongo-addr', stack.mongo.url, '--mongo-db', MONGO_DATABASE,
      '--project-id', 'test-project', '--topic', TOPIC, '--create-topic',
      '--serverHost', '127.0.0.1', '--serverPort', String(port),
      '--status-interval', '1s', '--heartbeat-interval', '1s', '--log-format', 'json', '--log-level', 'info',
      ...flags,
    ],
    { env: { ...process.env, ...CONNECTOR_MEMORY_ENV, PUBSUB_EMULATOR_HOST: stack.pubsub.host, ...env }, stdout: 'ignore', stderr: 'pipe' },
  )
  let logged = ''
  ;(async () => {
    for await (const chunk of child.stderr as ReadableStream<Uint8Array>) {
      const text = new TextDecoder().decode(chunk)
      logged += text
      if (process.env.TC_TEST_LOG) process.stderr.write(text)
    }
  })()
  const connector: Connector = {
    port,
    process: child,
    log: () => logged,
    async info() {
      const response = await fetch(`http://127.0.0.1:${port}/info`)
      return response.json() as Promise<Record<string, any>>
    },
    async kill(signal = 'SIGTERM') {
      child.kill(signal)
      // A connector that does not stop is killed, so that it holds up neither the run nor PostgreSQL's shutdown;
      // its exit status then says it did not stop by itself.
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
      const status = await child.exited
      clearTimeout(timer)
      return status
    },
  }
  if (until === 'spawned') return connector
  let exited: Error | null = null
  await waitFor(`the connector to be ${until}`, async () => {
    if (child.exitCode !== null) exited ??= new Error(`connector exited with ${child.exitCode}`)
    if (exited) return true
    const { state } = await connector.info()
    return until === 'answering' ? state !== undefined : state === 'streaming'
  }, timeoutMs).then(() => {
    if (exited) throw exited
  }).catch((error) => {
    child.kill('SIGKILL')
    throw new Error(`${error.message}\n${logged}`)
  })
  return connector
}

/** Waits until the connector has made everything committed so far durable and published. */
export async function waitCaughtUp(stack: Stack, connector: Connector, timeoutMs = 60_000) {
  const [{ position }] = await stack.pg.sql<[{ position: string }]>`select pg_current_wal_insert_lsn()::text as position`
  const target = lsnValue(position)
  let info: Record<string, unknown> = {}
  await waitFor(`the connector to confirm ${position}`, async () => lsnValue((info = await connector.info()).confirmedLsn as string) >= target, timeoutMs, 200).catch((error) => {
    throw new Error(`${error.message}; /info said ${JSON.stringify(info)}`)
  })
}

/** Waits until the connector's initial load is under way and has stored at least `tasks` tasks. */
export async function waitInitialLoadUnderWay(stack: Stack, tasks: number, timeoutMs: number) {
  await waitFor(`an initial load under way with ${tasks} tasks stored`, async () => {
    const checkpoint = await stack.db.collection('checkpoints').findOne({ _id: 'task_connector' as any })
    return checkpoint?.initialLoad === 'running' && (await stack.db.collection('tasks').estimatedDocumentCount()) >= tasks
  }, timeoutMs, 200)
}

export function lsnValue(text: string): bigint {
  const [high, low] = text.split('/')
  return (BigInt('0x' + high) << 32n) | BigInt('0x' + low)
}

/** Every event published to the test topic, parsed. */
export async function publishedEvents(stack: Stack): Promise<Record<string, any>[]> {
  return (await stack.pubsub.messages(TOPIC)).map((message) => JSON.parse(message.data.toString()))
}
