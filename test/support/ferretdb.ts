// A real MongoDB-protocol server for the tests: FerretDB 1.24 on SQLite in a fresh temp dir. stop() and
// kill() take it down with its data kept, restart() brings it back on the same port and data, so
// outage tests see a server that goes away and returns with everything it had acknowledged.

import { join } from 'node:path'
import { MongoClient } from 'mongodb'
import { freePort } from './ports.ts'
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
  /** Stops the server and removes its data now (otherwise removed when the test process exits). */
  close(): Promise<void>
  logPath: string
}

export async function startFerretDb(): Promise<FerretDb> {
  const bin = tool('ferretdb')
  const dir = tempDir('ferretdb-')
  const logPath = join(dir, 'ferretdb.log')
  let port = await freePort()
  let proc: ServerProcess | undefined

  const url = () => `mongodb://127.0.0.1:${port}/`

  async function start() {
    proc = spawnServer(
      [
        bin,
        '--handler=sqlite',
        `--sqlite-url=file:${dir}/`,
        `--listen-addr=127.0.0.1:${port}`,
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
    logPath,
    async stop() {
      if (proc) await stopServer(proc)
    },
    kill() {
      proc?.kill('SIGKILL')
    },
    async restart() {
      if (proc) await stopServer(proc)
      await start()
    },
    async close() {
      if (proc) await stopServer(proc)
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
