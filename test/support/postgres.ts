// A throwaway PostgreSQL 15 cluster for tests and benchmarks: initdb in a temp dir, wal_level=logical,
// a free loopback port, removed on stop. As root it runs the server as the `postgres` OS user,
// since initdb and postgres refuse to run as root.

import { mkdtempSync, rmSync, chownSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { freePort } from './ports.ts'

const PG_BIN = process.env.TC_PG_BIN ?? '/usr/lib/postgresql/15/bin'
export const WORKSPACE_SQL = join(import.meta.dir, '../fixtures/workspace.sql')
const SUPERUSER = 'postgres'
export const TEST_DATABASE = 'workspace'

export type PostgresServer = {
  host: string
  port: number
  database: string
  user: string
  dataDir: string
  /** A normal (non-replication) connection pool to the test database. */
  sql: postgres.Sql
  /** postgres.js options for a new connection to the test database. */
  options: postgres.Options<{}>
  /** Creates another database from the workspace schema and returns its name. */
  createDatabase(name: string): Promise<string>
  restart(): Promise<void>
  /** Shuts the server down (fast), keeping its data and port for resume(). */
  pause(): Promise<void>
  resume(): Promise<void>
  stop(): Promise<void>
  log(): string
}

export type PostgresSettings = Record<string, string | number>

const DEFAULT_SETTINGS: PostgresSettings = {
  wal_level: 'logical',
  max_wal_senders: 20,
  max_replication_slots: 20,
  // The tests measure our client, not the disk: durability of the test server itself is not under test.
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  shared_buffers: '256MB',
  max_wal_size: '1GB',
  logical_decoding_work_mem: '64MB',
  TimeZone: 'UTC',
}

/** A cluster that records when each transaction committed, for `commitTimeOf`: a setting read only at server start. */
export const COMMIT_TIMESTAMPS: PostgresSettings = { track_commit_timestamp: 'on' }

/**
 * When PostgreSQL says transaction `xid` committed, as ISO-8601 UTC with its microseconds cut to milliseconds, as
 * the events cut them. Needs a cluster started with COMMIT_TIMESTAMPS (`now()` is the transaction's start, not this).
 */
export async function commitTimeOf(sql: postgres.Sql, xid: number): Promise<string> {
  const [row] = await sql`select floor(extract(epoch from pg_xact_commit_timestamp(${String(xid)}::xid)) * 1000)::int8 as ms`
  if (row?.ms == null) throw new Error(`no commit timestamp for xid ${xid} (is track_commit_timestamp on?)`)
  return new Date(Number(row.ms)).toISOString()
}

const live = new Set<PostgresServer>()
process.on('exit', () => {
  for (const server of live) stopNow(server.dataDir)
})

function asServerUser(command: string[]): string[] {
  return process.getuid?.() === 0 ? ['runuser', '-u', SUPERUSER, '--', ...command] : command
}

// Asynchronous on purpose: a fast shutdown waits for our own walsender clients to answer, which they
// cannot do while a synchronous spawn blocks the event loop.
async function run(command: string[], what: string) {
  const child = Bun.spawn(asServerUser(command), { stdout: 'pipe', stderr: 'pipe' })
  const [exitCode, stdout, stderr] = await Promise.all([child.exited, new Response(child.stdout).text(), new Response(child.stderr).text()])
  if (exitCode !== 0) throw new Error(`${what} failed (${exitCode}): ${stderr.trim() || stdout.trim()}`)
}

function stopNow(dataDir: string) {
  if (existsSync(join(dataDir, 'postmaster.pid')))
    Bun.spawnSync(asServerUser([join(PG_BIN, 'pg_ctl'), '-D', dataDir, '-m', 'immediate', '-w', 'stop']), { stdout: 'ignore', stderr: 'ignore' })
}

export async function startPostgres(settings: PostgresSettings = {}): Promise<PostgresServer> {
  const root = mkdtempSync(join(tmpdir(), 'tc-pg-'))
  const dataDir = join(root, 'data')
  const logFile = join(root, 'server.log')
  if (process.getuid?.() === 0) {
    const { uid, gid } = osUser(SUPERUSER)
    chownSync(root, uid, gid)
  }
  await run([join(PG_BIN, 'initdb'), '-D', dataDir, '-A', 'trust', '-U', SUPERUSER, '-E', 'UTF8', '--no-sync'], 'initdb')

  const port = await freePort()
  const config = { ...DEFAULT_SETTINGS, ...settings, port, listen_addresses: '127.0.0.1', unix_socket_directories: root }
  const serverOptions = Object.entries(config).map(([key, value]) => `-c ${key}=${value}`).join(' ')
  const start = () => run([join(PG_BIN, 'pg_ctl'), '-D', dataDir, '-l', logFile, '-o', serverOptions, '-w', '-t', '60', 'start'], 'pg_ctl start')
  await start()

  const options: postgres.Options<{}> = {
    host: '127.0.0.1', port, user: SUPERUSER, database: TEST_DATABASE, onnotice: () => {}, max: 4,
  }
  const admin = postgres({ ...options, database: 'postgres', max: 1 })
  await admin.unsafe(`create database ${TEST_DATABASE}`)
  await admin.end()
  const sql = postgres(options)
  await sql.file(WORKSPACE_SQL)

  const server: PostgresServer = {
    host: '127.0.0.1',
    port,
    database: TEST_DATABASE,
    user: SUPERUSER,
    dataDir,
    sql,
    options,
    async createDatabase(name) {
      await sql.unsafe(`create database ${name}`)
      const other = postgres({ ...options, database: name, max: 1 })
      await other.file(WORKSPACE_SQL)
      await other.end()
      return name
    },
    async restart() {
      await server.pause()
      await server.resume()
    },
    async pause() {
      await run([join(PG_BIN, 'pg_ctl'), '-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop'], 'pg_ctl stop')
    },
    resume: () => start(),
    async stop() {
      live.delete(server)
      await sql.end({ timeout: 1 }).catch(() => {})
      stopNow(dataDir)
      rmSync(root, { recursive: true, force: true })
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
  }
  live.add(server)
  return server
}

function osUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((entry) => entry.startsWith(name + ':'))
  if (!line) throw new Error(`no OS user ${name}: install postgresql-15 (scripts/setup)`)
  const [, , uid, gid] = line.split(':')
  return { uid: Number(uid), gid: Number(gid) }
}
