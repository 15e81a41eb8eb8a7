// The command line as a user meets it: the real entry point, spawned, its output and exit status.

import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { ConfigError } from '../src/config.ts'
import { describeFailure } from '../src/cli.ts'

const ROOT = join(import.meta.dir, '..')
const SECRET = 'sw0rdfish-never-printed'
const STACK_FRAME = /^\s+at /m

// The host's TC_* variables must not leak into these runs.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TC_')))

async function cli(args: string[], env: Record<string, string> = {}) {
  const child = Bun.spawn([process.execPath, 'src/cli.ts', ...args], {
    cwd: ROOT,
    env: { ...cleanEnv, ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ])
  return { stdout, stderr, exitCode }
}

function stderrLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line !== '')
}

describe('version', () => {
  test('prints name, version, commit and bun on one line', async () => {
    const { stdout, stderr, exitCode } = await cli(['version'])
    expect(exitCode).toBe(0)
    expect(stderr).toBe('')
    expect(stdout).toMatch(/^tag-connector \d+\.\d+\.\d+\S* \(commit ([0-9a-f]{4,40}|unknown), bun \d+\.\d+\.\d+\S*\)\n$/)
    expect(stdout).toContain(`bun ${Bun.version})`)
  })

  test('--version says the same', async () => {
    const [command, flag] = await Promise.all([cli(['version']), cli(['--version'])])
    expect(flag.exitCode).toBe(0)
    expect(flag.stdout).toBe(command.stdout)
  })
})

describe('help', () => {
  test('help lists the four commands', async () => {
    const { stdout, exitCode } = await cli(['help'])
    expect(exitCode).toBe(0)
    for (const command of ['extract-tasks', 'start-job', 'version', 'help']) {
      expect(stdout).toMatch(new RegExp(`^\\s+${command}\\s+\\S`, 'm'))
    }
  })

  test('no command, --help and -h show the same top-level usage', async () => {
    const runs = await Promise.all([cli([]), cli(['--help']), cli(['-h']), cli(['help'])])
    for (const run of runs) {
      expect(run.exitCode).toBe(0)
      expect(run.stdout).toBe(runs[3]!.stdout)
    }
  })

  test('extract-tasks --help lists every flag with its default and no secret value', async () => {
    const { stdout, stderr, exitCode } = await cli(['extract-tasks', '--help', '--password', SECRET], {
      TC_CLIENT_SECRET: SECRET,
    })
    expect(exitCode).toBe(0)
    expect(stderr).toBe('')
    for (const flag of [
      '--db', '--pgHost', '--pgPort', '--user', '--password', '--password-file', '--serverHost', '--serverPort',
      '--mongo-addr', '--mongo-db', '--project-id', '--topic', '--service-account', '--oidc', '--ws', '--client-id',
      '--client-secret', '--client-secret-file', '--slot', '--schema', '--initial-load', '--status-interval',
      '--heartbeat-interval', '--create-topic', '--auth-issuer', '--auth-audience', '--max-stream-clients', '--stream-idle-timeout',
      '--log-level', '--log-format',
    ]) {
      expect(stdout).toMatch(new RegExp(`^\\s+${flag}[=\\s]`, 'm'))
    }
    expect(stdout).toContain('(default: localhost)')
    expect(stdout).toContain('(default: 5432)')
    expect(stdout).not.toContain(SECRET)
    // the original service's built-in secrets are gone: no secret flag shows a default
    for (const line of stdout.split('\n').filter((line) => /--(password|client-secret)/.test(line))) {
      expect(line).not.toContain('default')
    }
    expect(stdout).not.toMatch(/\x1b\[/)
  })

  test('help <command> shows that command; start-job has its own flags', async () => {
    const [viaHelp, viaFlag] = await Promise.all([cli(['help', 'start-job']), cli(['start-job', '--help'])])
    expect(viaHelp.exitCode).toBe(0)
    expect(viaHelp.stdout).toBe(viaFlag.stdout)
    expect(viaHelp.stdout).toContain('--schedule')
    expect(viaHelp.stdout).toContain('(default: */30 * * * *)')
    expect(viaHelp.stdout).toContain("in the host's time zone (or TZ)")
    expect(viaHelp.stdout).not.toMatch(/^\s+--pgHost=/m)
  })
})

describe('usage errors exit 2 with one line on stderr', () => {
  const cases: [string, string[], Record<string, string>, string][] = [
    ['bad port', ['extract-tasks', '--db', 'ws', '--pgPort', 'abc'], {}, 'tag-connector: --pgPort must be an integer from 1 to 65535 (got "abc")'],
    ['bad port from the environment', ['extract-tasks', '--db', 'ws'], { TC_SERVER_PORT: '0' }, 'tag-connector: TC_SERVER_PORT must be an integer from 1 to 65535 (got "0")'],
    ['bad URL', ['start-job', '--ws', 'not a url'], {}, 'tag-connector: --ws must be an http(s) URL (got "not a url")'],
    ['bad cron', ['start-job', '--schedule', 'every hour'], {}, 'tag-connector: --schedule is not a cron expression (got "every hour")'],
    ['missing --db', ['extract-tasks'], {}, 'tag-connector: --db is required: the PostgreSQL database to stream from (or set TC_DB)'],
    ['unknown flag', ['extract-tasks', '--db', 'ws', '--pghost', 'x'], {}, 'tag-connector: unknown flag --pghost for extract-tasks'],
    ['missing value', ['extract-tasks', '--db', 'ws', '--pgHost'], {}, 'tag-connector: --pgHost needs a value'],
    ['value swallowed by the next flag', ['extract-tasks', '--pgHost', '--db', 'ws'], {}, 'tag-connector: --pgHost needs a value'],
    ['unknown command', ['extract'], {}, 'tag-connector: unknown command "extract"'],
    ['help for an unknown command', ['help', 'nope'], {}, 'tag-connector: unknown command "nope"'],
    ['a flag before the command', ['--db', 'ws', 'extract-tasks'], {}, 'tag-connector: expected a command before --db'],
  ]

  for (const [name, args, env, expected] of cases) {
    test(name, async () => {
      const { stdout, stderr, exitCode } = await cli(args, env)
      expect(exitCode).toBe(2)
      expect(stdout).toBe('')
      const lines = stderrLines(stderr)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toStartWith(expected)
      expect(stderr).not.toMatch(STACK_FRAME)
    })
  }
})

describe('secrets', () => {
  test('a secret passed by flag never appears in any output', async () => {
    const runs = await Promise.all([
      cli(['extract-tasks', '--db', 'ws', '--password', SECRET, '--pgPort', 'abc']),
      cli(['extract-tasks', '--db', 'ws', '--password', SECRET, '--password-file', '/etc/hostname']),
      cli(['start-job', '--client-secret', SECRET, '--mongo-addr', `mongodb://u:${SECRET}@x`, '--page-size', '0']),
      cli(['start-job', '--client-secret', SECRET, '--help']),
      cli(['start-job', '--mongo-addr', `http://u:${SECRET}@x`]),
    ])
    for (const { stdout, stderr, exitCode } of runs) {
      expect([0, 2]).toContain(exitCode)
      expect(stdout + stderr).not.toContain(SECRET)
    }
    expect(stderrLines(runs[1]!.stderr)).toEqual(['tag-connector: give either --password or --password-file, not both'])
    expect(runs[4]!.stderr).toContain('http://u:***@x')
  })
})

describe('failures', () => {
  test('a configuration error is a usage failure: one line, exit 2, no stack even when debugging', () => {
    const failure = describeFailure(new ConfigError('--pgPort must be an integer'), true)
    expect(failure).toEqual({ lines: ['tag-connector: --pgPort must be an integer'], exitCode: 2 })
  })

  test('any other error is one line and exit 1; its stack only when debugging', () => {
    const error = new Error('connection refused\n  while connecting to localhost:5432')
    expect(describeFailure(error, false)).toEqual({
      lines: ['tag-connector: connection refused while connecting to localhost:5432'],
      exitCode: 1,
    })
    const debug = describeFailure(error, true)
    expect(debug.exitCode).toBe(1)
    expect(debug.lines[0]).toBe('tag-connector: connection refused while connecting to localhost:5432')
    expect(debug.lines[1]).toMatch(STACK_FRAME)
    expect(describeFailure('plain string', false).lines).toEqual(['tag-connector: plain string'])
  })
})
