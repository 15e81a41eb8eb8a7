// bench:snapshot — `start-job --once` over 100,000 tasks served by the tests' workspace GraphQL API (real
// OAuth2 tokens, FerretDB, the Pub/Sub emulator), beside its ceiling: a bare loop in a process of its own
// (snapshot-ceiling.ts) that reads the same pages from the same server and publishes the same messages to the
// same emulator with the same client settings, reading the next page while publishing, with nothing of
// start-job in between. Rounds alternate the two, each on a fresh topic (and database for start-job);
// figures are medians. Both clocks run from the process's spawn until the sinks hold its whole output
// (start-job's: the topic its last message and `snapshots` the completed record; the loop's: the topic its
// last message), sampled every 20 ms. Peak RSS of both, the highest of the rounds: the loop's is the floor
// the runtime and the Pub/Sub client set.
// Progress on stderr; the last line on stdout is the JSON report of /work/shared/benchmarks.md.
//   bun scripts/bench/snapshot.ts [--rounds 3] [--workspaces 20] [--tasks 100000] [--page-size 200]

import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { logLines, spawnMeasured, startJobProcess, startSnapshotStack, target } from '../../test/support/start-job.ts'
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    workspaces: { type: 'string', default: '20' },
    tasks: { type: 'string', default: '100000' },
    'page-size': { type: 'string', default: '200' },
  },
})
const ROUNDS = Number(values.rounds)
const WORKSPACES = Number(values.workspaces)
const TASKS = Number(values.tasks)
const PAGE_SIZE = values['page-size']!
const CEILING = join(import.meta.dir, 'snapshot-ceiling.ts')
const SAMPLE_MS = 20

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const progress = (line: string) => process.stderr.write(line + '\n')

type SinkSample = { messages: number; completed: boolean }

/**
 * Runs `run` from now and returns the ms until the sinks held its whole output: the first sample, taken every
 * SAMPLE_MS while it runs (and once after), that saw `final` (read once it ended: only then is the whole known).
 */
async function clockUntilSinksHold(run: () => Promise<void>, sample: () => Promise<SinkSample>, final: () => Promise<SinkSample>): Promise<number> {
  const spawned = performance.now()
  const samples: (SinkSample & { at: number })[] = []
  let ended = false
  const sampling = (async () => {
    for (;;) {
      const last = ended
      samples.push({ ...(await sample()), at: performance.now() - spawned })
      if (last) return
      await Bun.sleep(SAMPLE_MS)
    }
  })()
  try {
    await run()
  } finally {
    ended = true
    await sampling
  }
  const whole = await final()
  const held = samples.find((taken) => taken.messages >= whole.messages && (taken.completed || !whole.completed))
  if (!held) throw new Error(`the sinks never held the run's ${whole.messages} messages`)
  return held.at
}

const stack = await startSnapshotStack({ workspaces: WORKSPACES, tasksPerWorkspace: TASKS / WORKSPACES })
try {
  const runs = { ours: [] as number[], ceiling: [] as number[], rss: [] as number[], ceilingRss: [] as number[] }
  for (let round = 1; round <= ROUNDS; round++) {
    const to = target('bench')
    const records = stack.mongoClient.db(to.database).collection('snapshots')
    let job: Awaited<ReturnType<typeof startJobProcess>['done']> | null = null
    const ours = await clockUntilSinksHold(
      () => startJobProcess(stack, to, ['--once', '--page-size', PAGE_SIZE]).done.then((done) => void (job = done)),
      async () => ({ messages: await stack.pubsub.count(to.topic).catch(() => 0), completed: (await records.countDocuments({ outcome: 'completed' })) === 1 }),
      async () => ({ messages: await stack.pubsub.count(to.topic), completed: true }),
    )
    const summary = logLines(job!.stderr).find((line) => line.outcome)
    if (job!.exitCode !== 0 || summary?.outcome !== 'completed' || summary.tasks !== TASKS) throw new Error(`start-job failed: ${job!.stderr.slice(-2000)}`)
    runs.ours.push(ours)
    runs.rss.push(job!.peakRssMb)
    progress(`round ${round}: start-job ${Math.round(ours)} ms to the sinks holding its run (${summary.durationMs} ms by its own log), peak RSS ${job!.peakRssMb} MB`)

    const loopTopic = `${to.topic}-loop`
    let loop: Awaited<ReturnType<typeof spawnMeasured>['done']> | null = null
    const ceiling = await clockUntilSinksHold(
      async () => {
        const token = await stack.oidc.token()
        loop = await spawnMeasured([process.execPath, CEILING, stack.api.url, token, PAGE_SIZE, stack.pubsub.host, 'test-project', loopTopic], {}).done
      },
      async () => ({ messages: await stack.pubsub.count(loopTopic).catch(() => 0), completed: true }),
      async () => ({ messages: await stack.pubsub.count(loopTopic), completed: true }),
    )
    const result = loop!.exitCode === 0 ? (JSON.parse(loop!.stdout) as { tasks: number }) : null
    if (result?.tasks !== TASKS) throw new Error(`the bare loop failed: ${loop!.stderr.slice(-2000)}`)
    runs.ceiling.push(ceiling)
    runs.ceilingRss.push(loop!.peakRssMb)
    progress(`round ${round}: bare loop ${Math.round(ceiling)} ms to the topic holding its messages, peak RSS ${loop!.peakRssMb} MB`)
  }
  const tasksPerS = TASKS / (median(runs.ours) / 1000)
  const ceilingPerS = TASKS / (median(runs.ceiling) / 1000)
  console.log(
    JSON.stringify({
      bench: 'snapshot',
      tasks: TASKS,
      workspaces: WORKSPACES,
      page_size: Number(PAGE_SIZE),
      rounds: ROUNDS,
      tasks_per_s: Math.round(tasksPerS),
      ceiling_tasks_per_s: Math.round(ceilingPerS),
      ratio_to_ceiling: Math.round((tasksPerS / ceilingPerS) * 100) / 100,
      peak_rss_mb: Math.max(...runs.rss),
      ceiling_peak_rss_mb: Math.max(...runs.ceilingRss),
    }),
  )
} finally {
  await stack.stop()
}
