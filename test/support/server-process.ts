// Server processes started by the tests: each logs to a temp file, and every one still running is killed
// (and every temp dir removed) when the test process exits, however it ends.

import { closeSync, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Subprocess } from 'bun'

// TOOLS_BIN: servers built elsewhere (scripts/build-emulators.sh honours it too).
const toolsBin = process.env.TOOLS_BIN || resolve(import.meta.dir, '../../.tools/bin')

const running = new Set<Subprocess>()
const dirs = new Set<string>()

process.on('exit', () => {
  for (const proc of running) proc.kill('SIGKILL')
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})
// Without these a Ctrl-C or a CI timeout would skip the exit handler and leave servers behind.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.once(signal, () => process.exit(code))
}

/** A temp dir removed at exit (or earlier by `removeDir`). */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  dirs.add(dir)
  return dir
}

export function removeDir(dir: string) {
  rmSync(dir, { recursive: true, force: true })
  dirs.delete(dir)
}

export function tool(name: string): string {
  const path = join(toolsBin, name)
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`bash scripts/build-emulators.sh\``)
  return path
}

export type ServerProcess = Subprocess<'ignore', 'pipe' | number, number>

// The exit handler cannot run when the test process is SIGKILLed (a CI timeout, a killed runner):
// setpriv makes the kernel kill the server then too, and execs it, so the pid stays the server's.
const setpriv = Bun.which('setpriv')
const dieWithParent = setpriv ? [setpriv, '--pdeathsig', 'KILL', '--'] : []

/** Starts `cmd` with stderr, and stdout unless `pipeStdout`, appended to `logPath`. */
export function spawnServer(cmd: string[], logPath: string, opts: { pipeStdout?: boolean } = {}): ServerProcess {
  const log = openSync(logPath, 'a')
  try {
    const proc = Bun.spawn([...dieWithParent, ...cmd], {
      stdin: 'ignore',
      stdout: opts.pipeStdout ? 'pipe' : log,
      stderr: log,
    }) as ServerProcess
    running.add(proc)
    proc.exited.then(() => running.delete(proc))
    return proc
  } finally {
    closeSync(log)
  }
}

/** SIGTERM, then SIGKILL if the process has not exited after `graceMs`. */
export async function stopServer(proc: Subprocess, graceMs = 5_000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  proc.kill('SIGTERM')
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs)
  await proc.exited
  clearTimeout(timer)
}

/** Polls `ready` until it returns true; fails at once, naming the log, if the process exits first. */
export async function waitReady(proc: Subprocess, what: string, logPath: string, ready: () => Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${what} exited (code ${proc.exitCode}, signal ${proc.signalCode}) before it was ready; log: ${logPath}`)
    }
    if (await ready().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`${what} was not ready after ${timeoutMs} ms; log: ${logPath}`)
    await Bun.sleep(50)
  }
}
