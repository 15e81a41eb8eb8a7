// What start-job's tests run against: the OAuth2 issuer, the workspace GraphQL API, FerretDB and the Pub/Sub
// emulator, each real and on loopback, and `tag-connector start-job` as a child process with its output,
// exit status and peak memory.

import { MongoClient } from 'mongodb'
import { type FerretDb, startFerretDb } from './ferretdb.ts'
import { peakRssMb } from './memory.ts'
import { type OidcIssuer, startOidcIssuer } from './oidc.ts'
import { type PubSubEmulator, startPubSubEmulator } from './pubsub.ts'
import { CONNECTOR_MEMORY_ENV, PROGRAM_COMMAND } from './stack.ts'
import { type WorkspaceApi, startWorkspaceApi } from './workspace-api.ts'

export const CLIENT = { clientId: 'snapshots', clientSecret: 'Zq8-very-secret-value' }
const RSS_POLL_MS = 100
// Budgets of the tests that use this (bun's default of 5 s is too short for a child process on a busy host):
// starting the four servers, and one short run of start-job.
export const STACK_START_MS = 120_000
export const RUN_MS = 60_000
const KILL_AFTER_MS = 300_000

export type SnapshotStack = {
  oidc: OidcIssuer
  api: WorkspaceApi
  mongo: FerretDb
  pubsub: PubSubEmulator
  mongoClient: MongoClient
  stop(): Promise<void>
}

export async function startSnapshotStack(data: { workspaces: number; tasksPerWorkspace: number; accessTokenTtlSeconds?: number }): Promise<SnapshotStack> {
  const oidc = await startOidcIssuer({ clients: [CLIENT], accessTokenTtlSeconds: data.accessTokenTtlSeconds })
  const [api, mongo, pubsub] = await Promise.all([startWorkspaceApi({ issuer: oidc, ...data }), startFerretDb(), startPubSubEmulator()])
  const mongoClient = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 30_000 })
  return {
    oidc,
    api,
    mongo,
    pubsub,
    mongoClient,
    async stop() {
      await mongoClient.close().catch(() => {})
      await Promise.all([api.stop(), oidc.stop(), mongo.close(), pubsub.stop()])
    },
  }
}

export type JobProcess = {
  process: ReturnType<typeof Bun.spawn>
  /** Resolves when the process exits: its status, output and the highest RSS seen. */
  done: Promise<{ exitCode: number; stdout: string; stderr: string; peakRssMb: number }>
  stderr(): string
}

let runs = 0

/** A fresh topic and MongoDB database for one test, so that tests share servers but not state. */
export function target(name: string) {
  runs++
  return { topic: `${name}-${runs}`, database: `${name.replace(/\W/g, '_')}_${runs}` }
}

/** Starts `tag-connector start-job` against the stack, as `client`, with `flags` after the defaults. */
export function startJobProcess(
  stack: SnapshotStack,
  to: { topic: string; database: string },
  flags: string[] = [],
  { env = {}, client = CLIENT }: { env?: Record<string, string>; client?: typeof CLIENT } = {},
): JobProcess {
  return spawnMeasured(
    [
      ...PROGRAM_COMMAND, 'start-job',
      '--oidc', stack.oidc.tokenEndpoint, '--ws', stack.api.url,
      '--client-id', client.clientId, '--client-secret', client.clientSecret,
      '--mongo-addr', stack.mongo.url, '--mongo-db', to.database,
      '--project-id', 'test-project', '--topic', to.topic, '--create-topic',
      '--log-format', 'json',
      ...flags,
    ],
    { ...CONNECTOR_MEMORY_ENV, PUBSUB_EMULATOR_HOST: stack.pubsub.host, ...env },
  )
}

/** Spawns `command` with the connector's memory settings and `env`: its output, exit status and peak RSS. */
export function spawnMeasured(command: string[], env: Record<string, string>): JobProcess {
  const child = Bun.spawn(command, { env: { ...process.env, ...CONNECTOR_MEMORY_ENV, ...env }, stdout: 'pipe', stderr: 'pipe' })
  let stderr = ''
  let peak = 0
  const poll = setInterval(() => {
    try {
      const rss = peakRssMb(child.pid)
      if (rss > peak) peak = rss
    } catch {}
  }, RSS_POLL_MS)
  const killer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS)
  const reading = (async () => {
    for await (const chunk of child.stderr as ReadableStream<Uint8Array>) {
      const text = new TextDecoder().decode(chunk)
      stderr += text
      if (process.env.TC_TEST_LOG) process.stderr.write(text)
    }
  })()
  const done = (async () => {
    const stdout = await new Response(child.stdout as ReadableStream<Uint8Array>).text()
    const exitCode = await child.exited
    await reading
    clearInterval(poll)
    clearTimeout(killer)
    return { exitCode, stdout, stderr, peakRssMb: peak }
  })()
  return { process: child, done, stderr: () => stderr }
}

/** Every event published to `topic`, parsed, with the message's attributes and ordering key. */
export async function published(stack: SnapshotStack, topic: string) {
  return (await stack.pubsub.messages(topic)).map((message) => ({
    event: JSON.parse(message.data.toString()) as Record<string, any>,
    attributes: message.attributes,
    orderingKey: message.orderingKey,
  }))
}

/** The JSON log lines of a run. */
export function logLines(stderr: string): Record<string, any>[] {
  return stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line))
}
