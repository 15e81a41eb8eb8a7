// bench:snapshot — `start-job --once` over 100,000 tasks served by the tests' workspace GraphQL API (real
// OAuth2 tokens, FerretDB, the Pub/Sub emulator), beside a bare loop of the same page requests against the
// same server (snapshot-ceiling.ts): the ceiling that the API itself sets; and beside the emulator taking the
// very messages start-job published, driven straight (bench:pipeline's pipeline-ceiling.ts, two requests at
// a time as start-job sends them): the ceiling the sink sets. Rounds alternate the three, each
// start-job run on a fresh topic and database; figures are medians. Every clock runs from the process's spawn:
// start-job's stops when the sinks hold its whole run (the topic its last message, `snapshots` the completed
// record), sampled every 20 ms; the emulator's when the topic holds every message; the page loop's at its exit,
// once it has read every page. start-job's peak RSS is the highest of the rounds.
// Progress on stderr; the last line on stdout is the JSON report of /work/shared/benchmarks.md.
//   bun scripts/bench/snapshot.ts [--rounds 3] [--workspaces 20] [--tasks 100000] [--page-size 200]

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { tempDir } from '../../test/support/server-process.ts'
import { logLines, startJobProcess, startSnapshotStack, target } from '../../test/support/start-job.ts'

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
const PUBSUB_CEILING = join(import.meta.dir, 'pipeline-ceiling.ts')
// start-job's own number of Publish requests under way.
const PUBLISH_CONCURRENCY = '2'
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
  const runs = { ours: [] as number[], ceiling: [] as number[], pubsub: [] as number[], rss: [] as number[] }
  const dir = tempDir('bench-snapshot-')
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

    const loopSpawned = performance.now()
    const loop = Bun.spawn([process.execPath, CEILING, stack.api.url, await stack.oidc.token(), PAGE_SIZE], { stdout: 'pipe', stderr: 'inherit' })
    const result = JSON.parse(await new Response(loop.stdout).text()) as { tasks: number }
    if ((await loop.exited) !== 0 || result.tasks !== TASKS) throw new Error(`the bare loop read ${result.tasks} tasks`)
    const loopMs = performance.now() - loopSpawned
    runs.ceiling.push(loopMs)
    progress(`round ${round}: bare page loop ${Math.round(loopMs)} ms`)

    const messages = (await stack.pubsub.messages(to.topic)).slice(0, -1) // without snapshot.completed
    const distinct = new Set(messages.map((message) => message.attributes.eventId)).size
    if (distinct !== messages.length) throw new Error(`start-job published ${messages.length - distinct} messages twice`)
    const file = join(dir, 'messages.jsonl')
    writeFileSync(file, messages.map((message) => JSON.stringify({ data: message.data.toString('base64'), attributes: message.attributes, orderingKey: message.orderingKey })).join('\n'))
    const directTopic = `${to.topic}-direct`
    const direct = await clockUntilSinksHold(
      async () => {
        const child = Bun.spawn(
          [process.execPath, PUBSUB_CEILING, 'pubsub', '--host', stack.pubsub.host, '--project', 'test-project', '--topic', directTopic, '--file', file, '--concurrency', PUBLISH_CONCURRENCY],
          { stdout: 'ignore', stderr: 'inherit' },
        )
        if ((await child.exited) !== 0) throw new Error('the Pub/Sub ceiling failed')
      },
      async () => ({ messages: await stack.pubsub.count(directTopic).catch(() => 0), completed: true }),
      async () => ({ messages: messages.length, completed: true }),
    )
    runs.pubsub.push((direct * TASKS) / messages.length)
    progress(`round ${round}: the emulator driven straight, ${messages.length} messages ${Math.round(direct)} ms`)
  }
  const tasksPerS = TASKS / (median(runs.ours) / 1000)
  const ceilingPerS = TASKS / (median(runs.ceiling) / 1000)
  const pubsubPerS = TASKS / (median(runs.pubsub) / 1000)
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
      pubsub_ceiling_tasks_per_s: Math.round(pubsubPerS),
      ratio_to_bottleneck: Math.round((tasksPerS / Math.min(ceilingPerS, pubsubPerS)) * 100) / 100,
      // Against reading every page and then publishing every message, one after the other: on two shared
      // cores, where the API server, the emulator and start-job take turns, that is nearly what can be had.
      ratio_to_serial: Math.round(tasksPerS * (1 / ceilingPerS + 1 / pubsubPerS) * 100) / 100,
      peak_rss_mb: Math.max(...runs.rss),
    }),
  )
} finally {
  await stack.stop()
}
