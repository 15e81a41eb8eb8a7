// The compiled binary, as it ships: TC_BINARY when scripts/test names the one it built, else built here once by
// the package's own `bun run build` (its flags and all) into dist/, for a test run on its own.

import { join, resolve } from 'node:path'

const ROOT = join(import.meta.dir, '../..')
const BUILT = join(ROOT, 'dist/tag-connector')

let built = false

export function shippedBinary(): string {
  if (process.env.TC_BINARY) return resolve(process.env.TC_BINARY)
  if (!built) {
    const build = Bun.spawnSync(['bun', 'run', 'build'], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' })
    if (build.exitCode !== 0) throw new Error(`bun run build failed: ${build.stderr.toString()}`)
    built = true
  }
  return BUILT
}
