// bench:startup — how long extract-tasks takes from exec to a ready /readyz (200: streaming, the sinks
// answering), as the compiled binary (dist/tag-connector, built first) and from the sources (bun src/cli.ts),
// measured side by side: rounds alternate the two (A B, then B A, …) against one stack whose slot exists, so
// every start resumes the same way; medians. Also the binary's size.
// Progress on stderr; the last line on stdout is one JSON object.
//   bun scripts/bench/startup.ts [--rounds 5]

import { statSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { waitFor } from '../../test/support/ports.ts'
import { startConnector, startStack } from '../../test/support/stack.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } })
const ROUNDS = Number(values.rounds)
const ROOT = join(import.meta.dir, '../..')
const BINARY = join(ROOT, 'dist/tag-connector')
const CONTENDERS = { binary: [BINARY], sources: [process.execPath, join(ROOT, 'src/cli.ts')] }
const POLL_MS = 5

const say = (text: string) => console.error(`bench:startup: ${text}`)
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const build = Bun.spawnSync(['bun', 'run', 'build'], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' })
if (build.exitCode !== 0) throw new Error(`bun run build failed: ${build.stderr}`)
const stack = await startStack()
try {
  // The slot and its (empty) load, once: every measured start then resumes from the checkpoint.
  await (await startConnector(stack)).kill()
  const times: Record<keyof typeof CONTENDERS, number[]> = { binary: [], sources: [] }
  for (let round = 0; round < ROUNDS; round++) {
    const order = (round % 2 ? ['sources', 'binary'] : ['binary', 'sources']) as (keyof typeof CONTENDERS)[]
    for (const name of order) {
      const startedAt = performance.now()
      const connector = await startConnector(stack, { program: CONTENDERS[name], until: 'spawned' })
      await waitFor(`${name} ready`, async () => (await fetch(`http://127.0.0.1:${connector.port}/readyz`)).status === 200, 60_000, POLL_MS)
      times[name].push(performance.now() - startedAt)
      say(`round ${round + 1}: ${name} ready after ${Math.round(times[name].at(-1)!)} ms`)
      await connector.kill()
    }
  }
  const binaryMs = Math.round(median(times.binary))
  const sourcesMs = Math.round(median(times.sources))
  console.log(JSON.stringify({
    bench: 'startup',
    rounds: ROUNDS,
    binary_bytes: statSync(BINARY).size,
    binary_ready_ms: binaryMs,
    sources_ready_ms: sourcesMs,
    ratio: Number((binaryMs / sourcesMs).toFixed(3)),
  }))
} finally {
  await stack.stop()
}
