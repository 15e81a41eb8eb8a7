// The systemd units in deploy/ as an operator installs them: `systemd-analyze verify` on each, inside a root
// of its own holding the unit, the binary's path and systemd's own units, must print nothing (no unknown key,
// no bad value, no missing command). A unit with a mistake in it shows the check can fail.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { appendFileSync, chmodSync, cpSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { removeDir, tempDir } from '../support/server-process.ts'

const DEPLOY = join(import.meta.dir, '../../deploy')
const UNITS = readdirSync(DEPLOY).filter((file) => file.endsWith('.service'))
/** Where the units say the binary is (ExecStart=). */
const BINARY = 'usr/local/bin/tag-connector'

let root: string

beforeAll(() => {
  root = tempDir('systemd-root-')
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true })
  mkdirSync(join(root, 'usr/local/bin'), { recursive: true })
  // verify checks that ExecStart= names an executable; what it does is the other tests' business.
  writeFileSync(join(root, BINARY), '#!/bin/sh\n')
  chmodSync(join(root, BINARY), 0o755)
  // The targets and slices every service depends on.
  cpSync('/usr/lib/systemd', join(root, 'usr/lib/systemd'), { recursive: true })
  for (const unit of UNITS) cpSync(join(DEPLOY, unit), join(root, 'etc/systemd/system', unit))
})
afterAll(() => removeDir(root))

function verify(unit: string) {
  const result = Bun.spawnSync(['systemd-analyze', 'verify', `--root=${root}`, unit], { stdout: 'pipe', stderr: 'pipe' })
  return { exitCode: result.exitCode, output: (result.stdout.toString() + result.stderr.toString()).trim() }
}

test('deploy/ ships a unit for extract-tasks and one for start-job', () => {
  expect(UNITS.sort()).toEqual(['tag-connector-start-job.service', 'tag-connector.service'])
})

for (const unit of UNITS)
  test(`${unit} verifies without a warning`, () => {
    expect(verify(unit)).toEqual({ exitCode: 0, output: '' })
  })

test('a unit with an unknown key does not verify silently', () => {
  const broken = 'broken.service'
  cpSync(join(DEPLOY, 'tag-connector.service'), join(root, 'etc/systemd/system', broken))
  appendFileSync(join(root, 'etc/systemd/system', broken), 'Restart=sometimes\n')
  expect(verify(broken).output).toContain('broken.service')
})
