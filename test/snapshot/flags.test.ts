// start-job refuses a bad command line before it touches any server: exit 2 and one line naming the problem.

import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'

const CLI = join(import.meta.dir, '../../src/cli.ts')
// The host's TC_* variables must not leak into these runs.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TC_')))
// Unreachable on purpose: a run that got past its checks would fail with exit 1, not 2.
const NOWHERE = ['--mongo-addr', 'mongodb://127.0.0.1:1', '--ws', 'http://127.0.0.1:1/graphql', '--oidc', 'http://127.0.0.1:1/token']

async function startJob(args: string[]) {
  const child = Bun.spawn([process.execPath, CLI, 'start-job', ...NOWHERE, ...args], { env: cleanEnv, stdout: 'pipe', stderr: 'pipe' })
  const [stderr, exitCode] = await Promise.all([new Response(child.stderr).text(), child.exited])
  return { lines: stderr.split('\n').filter(Boolean), exitCode }
}

describe('start-job flags', () => {
  test.each([
    ['a schedule that is not cron', ['--client-secret', 's', '--schedule', 'nope'], /^tag-connector: --schedule is not a cron expression \(got "nope"\)/],
    ['a page size of 0', ['--client-secret', 's', '--page-size', '0'], /^tag-connector: --page-size must be an integer from 1 to 500 \(got "0"\)$/],
    ['a page size above 500', ['--client-secret', 's', '--page-size', '501'], /^tag-connector: --page-size must be an integer from 1 to 500 \(got "501"\)$/],
    ['no client secret', ['--once'], /^tag-connector: start-job needs the OAuth2 client secret: --client-secret or --client-secret-file/],
  ])('%s: exit 2, one line', async (_, args, line) => {
    const { lines, exitCode } = await startJob(args)
    expect(exitCode).toBe(2)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(line)
  }, 30_000)
})
