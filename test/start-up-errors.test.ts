// A start-up that cannot reach a server ends with one line that names the server, its address (without the
// credentials of the connection string) and what was tried, and exits 1 (contract section 6).

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { freePort } from './support/ports.ts'
import { MONGO_DATABASE, PROGRAM_COMMAND, type Stack, startStack } from './support/stack.ts'

const SECRET = 'mongo-password-never-printed'

let stack: Stack
let closedPort: number

beforeAll(async () => {
  stack = await startStack()
  closedPort = await freePort()
}, 120_000)
afterAll(async () => {
  await stack?.stop()
}, 120_000)

/** Runs extract-tasks against the stack with some of it replaced; gives its exit status and last stderr line. */
async function extractTasks({ pgPort = stack.pg.port, mongoUrl = stack.mongo.url, pubsubHost = stack.pubsub.host } = {}) {
  const child = Bun.spawn(
    [
      ...PROGRAM_COMMAND, 'extract-tasks',
      '--db', stack.pg.database, '--pgHost', '127.0.0.1', '--pgPort', String(pgPort), '--user', stack.pg.user,
      '--mongo-addr', mongoUrl, '--mongo-db', MONGO_DATABASE, '--project-id', 'test-project', '--topic', 'startUpErrors',
      '--serverHost', '127.0.0.1', '--serverPort', String(await freePort()), '--log-format', 'json',
    ],
    { env: { ...process.env, PUBSUB_EMULATOR_HOST: pubsubHost }, stdout: 'ignore', stderr: 'pipe' },
  )
  const [stderr, exitCode] = await Promise.all([new Response(child.stderr).text(), child.exited])
  const lines = stderr.trim().split('\n')
  return { exitCode, lastLine: lines.at(-1)!, stderr }
}

test('PostgreSQL unreachable: named, with its address and what was tried', async () => {
  const { exitCode, lastLine } = await extractTasks({ pgPort: closedPort })
  expect(exitCode).toBe(1)
  expect(lastLine).toBe(
    `tag-connector: cannot reach PostgreSQL at postgresql://${stack.pg.user}@127.0.0.1:${closedPort}/${stack.pg.database} ` +
      `(reading the columns of public.workspaces, tasks): connect ECONNREFUSED 127.0.0.1:${closedPort}`,
  )
}, 60_000)

test('MongoDB unreachable: named, with its hosts but not its credentials', async () => {
  const { exitCode, lastLine, stderr } = await extractTasks({ mongoUrl: `mongodb://connector:${SECRET}@127.0.0.1:${closedPort}/?authSource=admin` })
  expect(exitCode).toBe(1)
  expect(lastLine).toStartWith(`tag-connector: cannot reach MongoDB at mongodb://127.0.0.1:${closedPort} (connecting for 10 s): `)
  expect(lastLine).toContain('ECONNREFUSED')
  expect(stderr).not.toContain(SECRET)
}, 60_000)

test('Pub/Sub unreachable: named, with the endpoint and the topic looked up', async () => {
  const { exitCode, lastLine } = await extractTasks({ pubsubHost: `127.0.0.1:${closedPort}` })
  expect(exitCode).toBe(1)
  expect(lastLine).toStartWith(
    `tag-connector: cannot reach Pub/Sub at 127.0.0.1:${closedPort} (PUBSUB_EMULATOR_HOST) (looking up topic projects/test-project/topics/startUpErrors): `,
  )
}, 60_000)
