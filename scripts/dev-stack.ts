// scripts/dev's local stack: a throwaway PostgreSQL 15 cluster with the sample workspace, FerretDB and the
// Pub/Sub emulator, each on a free port, and `tag-connector extract-tasks` against them; then a change to
// the sample data every few seconds and a tail of the events published. SIGINT or SIGTERM stops the
// connector first (it finishes its batches), then the servers, and removes every temp dir.
//   bun scripts/dev-stack.ts [--port 8080] [--interval 3] [--no-changes] [--no-tail]

import { join } from 'node:path'
import { createServer } from 'node:net'
import { parseArgs } from 'node:util'
import type postgres from 'postgres'
import { type FerretDb, startFerretDb } from '../test/support/ferretdb.ts'
import { freePort, waitFor } from '../test/support/ports.ts'
import { type PostgresServer, startPostgres } from '../test/support/postgres.ts'
import { type PubSubEmulator, startPubSubEmulator } from '../test/support/pubsub.ts'

const ROOT = join(import.meta.dir, '..')
const SAMPLE_DATA = join(import.meta.dir, 'sample-data.sql')
const TOPIC = 'taskTopic'
const PROJECT = 'local-dev'
const MONGO_DATABASE = 'task_connector'
const PREFERRED_PORT = 8080
const TAIL_EVERY_MS = 1_000
const READY_TIMEOUT_MS = 120_000
// Long enough for the batches in flight; after it the connector is killed.
const CONNECTOR_GRACE_MS = 15_000
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
// The event id below every other (contract section 5): the Stream resumes after it, from the first event.
const START_OF_HISTORY = '0000000000000000-00000000'

// The four people the sample tasks are assigned to (scripts/sample-data.sql).
const PEOPLE: Record<string, string> = {
  '7c0d6a2e-0000-4000-8000-00000000a001': 'Amina',
  '7c0d6a2e-0000-4000-8000-00000000a002': 'Bruno',
  '7c0d6a2e-0000-4000-8000-00000000a003': 'Chen',
  '7c0d6a2e-0000-4000-8000-00000000a004': 'Dana',
}
const NEW_TASK_TITLES = ['Check the tide tables', 'Review the risk assessment', 'Renew the permit', 'Ship the core samples', 'Brief the night shift', 'Archive the raw logs']

const { values: options } = parseArgs({
  options: {
    port: { type: 'string' },
    interval: { type: 'string', default: '3' },
    'no-changes': { type: 'boolean', default: false },
    'no-tail': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (options.help) {
  console.log('usage: scripts/dev [--port N] [--interval SECONDS] [--no-changes] [--no-tail]')
  process.exit(0)
}
const intervalMs = Number(options.interval) * 1000
if (!(intervalMs > 0)) fail(`--interval must be a positive number of seconds (got ${JSON.stringify(options.interval)})`)

const tty = Boolean(process.stdout.isTTY)
const paint = (code: number) => (text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text)
const dim = paint(2)
const bold = paint(1)
const cyan = paint(36)
const yellow = paint(33)
const say = (text: string) => console.log(`${dim('dev')} ${text}`)

function fail(message: string): never {
  console.error(`dev: ${message}`)
  process.exit(2)
}

// The test support stops its servers by exiting on the first signal; here a signal stops the connector
// first, so those handlers make way for ours. Its exit handlers stay: they kill what is left, whatever happens.
for (const signal of SIGNALS) process.removeAllListeners(signal)

let pg: PostgresServer | undefined
let mongo: FerretDb | undefined
let pubsub: PubSubEmulator | undefined
let connector: ReturnType<typeof Bun.spawn> | undefined
let stopping: Promise<never> | undefined
const timers: ReturnType<typeof setInterval>[] = []

function stop(reason: string, exitCode = 0): Promise<never> {
  stopping ??= (async () => {
    for (const timer of timers) clearInterval(timer)
    say(`${reason}: stopping`)
    if (connector && connector.exitCode === null && connector.signalCode === null) {
      connector.kill('SIGTERM')
      const killer = setTimeout(() => connector?.kill('SIGKILL'), CONNECTOR_GRACE_MS)
      await connector.exited
      clearTimeout(killer)
    }
    await Promise.allSettled([pg?.stop(), mongo?.close(), pubsub?.stop()])
    say('stopped; temp dirs removed')
    process.exit(exitCode)
  })()
  return stopping
}
for (const signal of SIGNALS) process.on(signal, () => void stop(signal))
// scripts/dev forwards Ctrl-C; if it is killed outright, nobody would: notice being orphaned instead.
const parent = process.ppid
timers.push(setInterval(() => process.ppid !== parent && void stop('parent gone'), 1_000))

try {
  say('starting PostgreSQL 15 (wal_level=logical), FerretDB and the Pub/Sub emulator …')
  ;[pg, mongo, pubsub] = await Promise.all([
    startPostgres().then((server) => (pg = server)),
    startFerretDb().then((server) => (mongo = server)),
    startPubSubEmulator().then((server) => (pubsub = server)),
  ])
  await pg.sql.file(SAMPLE_DATA)
  const [{ workspaces, tasks }] = await pg.sql<[{ workspaces: number; tasks: number }]>`
    select (select count(*) from workspaces)::int as workspaces, (select count(*) from tasks)::int as tasks`
  say(`sample data loaded: ${workspaces} workspaces, ${tasks} tasks`)
} catch (error) {
  console.error(`dev: the stack did not start: ${(error as Error).message}`)
  await stop('start-up failed', 1)
}
if (stopping) await stopping

const port = options.port ? Number(options.port) : (await isFree(PREFERRED_PORT)) ? PREFERRED_PORT : await freePort()
const args = [
  'extract-tasks',
  '--db', pg!.database, '--pgHost', pg!.host, '--pgPort', String(pg!.port), '--user', pg!.user,
  '--mongo-addr', mongo!.url, '--mongo-db', MONGO_DATABASE,
  '--project-id', PROJECT, '--topic', TOPIC, '--create-topic',
  '--serverHost', '127.0.0.1', '--serverPort', String(port),
]
const env = { PUBSUB_EMULATOR_HOST: pubsub!.host }
say(`running: ${Object.entries(env).map(([name, value]) => `${name}=${value}`).join(' ')} bun src/cli.ts ${args.join(' ')}`)
connector = Bun.spawn([process.execPath, 'src/cli.ts', ...args], {
  cwd: ROOT,
  env: { ...process.env, ...env },
  stdio: ['ignore', 'inherit', 'inherit'],
})
connector.exited.then((code) => void stop(`extract-tasks exited with ${code}`, code === 0 ? 0 : code || 1))

const base = `http://127.0.0.1:${port}`
const streaming = async () => ((await (await fetch(`${base}/info`)).json()) as { state?: string }).state === 'streaming'
await waitFor('extract-tasks to stream', streaming, READY_TIMEOUT_MS, 250).catch((error) => stop(error.message, 1))

console.log(`
${bold('task-connector is streaming.')}
  page       ${bold(`${base}/`)}   (the status page: open it in a browser)
  /info      curl -s ${base}/info
  Stream     curl -N '${base}/v1/api/ws/Stream?since=${START_OF_HISTORY}'   (every event from the start, then live)
  Snapshot   curl -s -H 'accept: application/x-ndjson' ${base}/v1/api/ws/Snapshot   (a header line, then a task a line)
  /readyz    curl -s ${base}/readyz
  /metrics   curl -s ${base}/metrics
  psql       psql -h ${pg!.host} -p ${pg!.port} -U ${pg!.user} ${pg!.database}
  MongoDB    ${mongo!.url}${MONGO_DATABASE}  (collections tasks, workspaces, task_events, checkpoints)
  Pub/Sub    PUBSUB_EMULATOR_HOST=${pubsub!.host}  project ${PROJECT}, topic ${TOPIC}
${options['no-changes'] ? '' : `A change to the sample data every ${options.interval} s; `}Ctrl-C stops everything.
`)

if (!options['no-tail']) timers.push(setInterval(tailEvents(pubsub!), TAIL_EVERY_MS))
if (!options['no-changes']) timers.push(setInterval(trickle(pg!.sql), intervalMs))

// ---------------------------------------------------------------------------------------------------------

/** Prints every event published since the last call, one line each. */
function tailEvents(emulator: PubSubEmulator) {
  let offset = 0
  let busy = false
  return async () => {
    if (busy || stopping) return
    busy = true
    try {
      const messages = await emulator.messages(TOPIC, offset)
      offset += messages.length
      // Pub/Sub orders by key only; within what arrived since the last look, show commit order.
      const events = messages.map((message) => JSON.parse(message.data.toString())).sort((a, b) => (a.id < b.id ? -1 : 1))
      for (const event of events) say(describeEvent(event))
    } catch {
      // The emulator is going away with the rest of the stack.
    } finally {
      busy = false
    }
  }
}

function describeEvent(event: Record<string, any>): string {
  const data = event.data ?? event.previous ?? {}
  const what = event.taskId ? `"${data.title}"` : event.workspaceId ? `workspace "${data.name}"` : ''
  const transition = event.transition ? `  ${event.transition.from ?? '∅'} → ${event.transition.to ?? '∅'}` : ''
  const changed = event.changed?.length ? `  changed: ${event.changed.join(', ')}` : ''
  return `${cyan('event')}  ${event.id}  ${event.type.padEnd(18)} ${what}${transition}${changed}`
}

/** One change to the sample data per call, cycling through the kinds a task's life has. */
function trickle(sql: postgres.Sql) {
  const person = () => Object.keys(PEOPLE)[Math.floor(Math.random() * 4)]!
  const moveStatus = (from: string[], to: string) => async () => {
    const [row] = await sql`
      update tasks set status = ${to}, updated_at = now()
      where id = (select id from tasks where status = any(${from}) order by random() limit 1)
      returning title`
    return row && `"${row.title}" → ${to}`
  }
  const steps: (() => Promise<string | undefined>)[] = [
    moveStatus(['todo'], 'in_progress'),
    async () => {
      const assignee = person()
      const [row] = await sql`
        update tasks set assignee_id = ${assignee}, updated_at = now()
        where id = (select id from tasks where status in ('todo', 'in_progress', 'blocked') and assignee_id is distinct from ${assignee}
                    order by random() limit 1)
        returning title`
      return row && `"${row.title}" reassigned to ${PEOPLE[assignee]}`
    },
    moveStatus(['in_progress'], 'done'),
    async () => {
      const title = NEW_TASK_TITLES[Math.floor(Math.random() * NEW_TASK_TITLES.length)]!
      const [row] = await sql`
        insert into tasks (id, workspace_id, title, priority, assignee_id, due_at, labels)
        select gen_random_uuid(), id, ${title}, 1 + floor(random() * 4)::int, ${person()}, now() + interval '7 days', '{new}'
        from workspaces order by random() limit 1
        returning title`
      return row && `new task "${row.title}"`
    },
    moveStatus(['in_progress'], 'blocked'),
    async () => {
      const [row] = await sql`
        update tasks set priority = priority + 1, labels = array_append(labels, 'urgent'), updated_at = now()
        where id = (select id from tasks where not 'urgent' = any(labels) order by random() limit 1)
        returning title`
      return row && `"${row.title}" escalated (priority, labels; no status change)`
    },
    async () => {
      const [row] = await sql`
        delete from tasks where id = (select id from tasks where status in ('done', 'cancelled') order by updated_at limit 1)
        returning title`
      return row && `"${row.title}" deleted`
    },
    moveStatus(['blocked'], 'in_progress'),
    moveStatus(['todo'], 'cancelled'),
    async () => {
      // Three changes in one transaction: one commit LSN, ordinals 0, 1, 2 in the event ids.
      const name = `Sprint ${new Date().toISOString().slice(11, 19)}`
      await sql.begin(async (transaction) => {
        const [workspace] = await transaction`insert into workspaces (id, name) values (gen_random_uuid(), ${name}) returning id`
        await transaction`
          insert into tasks (id, workspace_id, title, assignee_id)
          values (gen_random_uuid(), ${workspace!.id}, 'Plan the sprint', ${person()}), (gen_random_uuid(), ${workspace!.id}, 'Hold the retrospective', null)`
      })
      return `new workspace "${name}" with two tasks, in one transaction`
    },
  ]
  let next = 0
  let busy = false
  return async () => {
    if (busy || stopping) return
    busy = true
    try {
      const step = steps[next++ % steps.length]!
      const done = (await step()) ?? (await steps[3]!())
      say(`${yellow('change')} ${done}`)
    } catch (error) {
      if (!stopping) say(`change failed: ${(error as Error).message}`)
    } finally {
      busy = false
    }
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}
