// A real MongoDB-protocol server for the tests: FerretDB 1.24 on SQLite in a fresh temp dir, or on a
// PostgreSQL cluster of its own (a second implementation of the protocol to prove against; choose it with
// `backend`, or for a whole run with TC_FERRETDB_BACKEND=postgresql). stop() and kill() take it down with its
// data kept, restart() brings it back on the same port and data, so outage tests see a server that goes away
// and returns with everything it had acknowledged; freeze() makes it a server that hangs.

import { join } from 'node:path'
import { MongoClient } from 'mongodb'
import { freePort } from './ports.ts'
import { type PostgresServer, startPostgres } from './postgres.ts'
import { removeDir, type ServerProcess, spawnServer, stopServer, tempDir, tool, waitReady } from './server-process.ts'

export type FerretDb = {
  /** mongodb://127.0.0.1:PORT/ */
  url: string
  port: number
  /** Stops the server (SIGTERM); data and port are kept for restart(). */
  stop(): Promise<void>
  /** Kills the server (SIGKILL), as a crash would; data and port are kept for restart(). */
  kill(): void
  /** Starts the server again on the same port and data, stopping it first if it runs. */
  restart(): Promise<void>
  /** Suspends the process (SIGSTOP): connections stay open and nothing answers, as with a hung server. */
  freeze(): void
  thaw(): void
  /** Stops the server and removes its data now (otherwise removed when the test process exits). */
  close(): Promise<void>
  logPath: string
  /** The TLS listener's port, when started with `tls`. */
  tlsPort: number | null
}

export type FerretDbBackend = 'sqlite' | 'postgresql'

export const FERRETDB_BACKEND: FerretDbBackend = process.env.TC_FERRETDB_BACKEND === 'postgresql' ? 'postgresql' : 'sqlite'

// FerretDB's PostgreSQL pool defaults to max(4, CPUs) connections and deadlocks under a batch's concurrent
// operations; a pool this size answers.
const POSTGRESQL_POOL = 'pool_max_conns=150'

export type FerretDbOptions = {
  backend?: FerretDbBackend
  /** A second listener, with TLS, using this certificate and key (PEM files). */
  tls?: { certFile: string; keyFile: string }
}

export async function startFerretDb({ backend = FERRETDB_BACKEND, tls }: FerretDbOptions = {}): Promise<FerretDb> {
  const bin = tool('ferretdb')
  const dir = tempDir('ferretdb-')
  const logPath = join(dir, 'ferretdb.log')
  let port = await freePort()
  const tlsPort = tls ? await freePort() : null
  let proc: ServerProcess | undefined
  const storage: PostgresServer | null = backend === 'postgresql' ? await startPostgres() : null
  const handler = storage
    ? ['--handler=postgresql', `--postgresql-url=postgres://${storage.user}@127.0.0.1:${storage.port}/postgres?${POSTGRESQL_POOL}`]
    : ['--handler=sqlite', `--sqlite-url=file:${dir}/`]

  const url = () => `mongodb://127.0.0.1:${port}/`

  async function start() {
    proc = spawnServer(
      [
        bin,
        ...handler,
        `--listen-addr=127.0.0.1:${port}`,
        ...(tls ? [`--listen-tls=127.0.0.1:${tlsPort}`, `--listen-tls-cert-file=${tls.certFile}`, `--listen-tls-key-file=${tls.keyFile}`] : []),
        `--state-dir=${dir}`,
        '--debug-addr=-',
        '--telemetry=disable',
        '--log-level=warn',
      ],
      logPath,
    )
    await waitReady(proc, `FerretDB on port ${port}`, logPath, () => ping(url()))
  }

  // freePort() only finds a port that was free a moment ago: retry the first start on another.
  for (let attempt = 1; ; attempt++) {
    try {
      await start()
      break
    } catch (err) {
      if (attempt === 3) throw err
      if (proc) await stopServer(proc)
      port = await freePort()
    }
  }

  return {
    url: url(),
    port,
    tlsPort,
    logPath,
    async stop() {
      if (proc) await stopServer(proc)
    },
    kill() {
      proc?.kill('SIGKILL')
    },
    freeze() {
      proc?.kill('SIGSTOP')
    },
    thaw() {
      proc?.kill('SIGCONT')
    },
    async restart() {
      if (proc) await stopServer(proc)
      await start()
    },
    async close() {
      if (proc) {
        proc.kill('SIGCONT')
        await stopServer(proc)
      }
      await storage?.stop()
      removeDir(dir)
    },
  }
}

async function ping(url: string): Promise<boolean> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 1_000, connectTimeoutMS: 1_000 })
  try {
    await client.db('admin').command({ ping: 1 })
    return true
  } finally {
    await client.close()
  }
}
