// start-job: snapshot runs on `--schedule` (croner), or one with `--once`. Owns the schedule, the signals
// and the clients. Guarantees: runs never overlap (one still going when the next is due is skipped with a
// log line); SIGTERM/SIGINT during a run stops it where it waits (a page, a publish, the drift comparison)
// and records it `aborted`, between runs stops at once, a clean stop either way; each run logs one line with
// its counts, drift, duration and the next run; under --once a failed run fails the command with its
// one-line reason; records left `running` by a process that is gone are set `failed` at start and before
// each run.

import { Cron } from 'croner'
import { CRON_MODE, ConfigError, type StartJobConfig, envName } from '../config.ts'
import type { Logger } from '../log.ts'
import { connectMongo } from '../sinks/mongo.ts'
import { createPublisher } from '../sinks/pubsub.ts'
import { STALE_AFTER_MS, snapshotRecords } from './records.ts'
import { type RunSummary, runSnapshot } from './run.ts'
import { createTokenSource } from './token.ts'
import { createWorkspaceApi } from './workspace-api.ts'

export class SnapshotFailedError extends Error {
  override name = 'SnapshotFailedError'
}

export async function startJob(config: StartJobConfig, log: Logger): Promise<void> {
  // The flags are shared with extract-tasks, which accepts them without a secret; start-job calls the API.
  const { clientSecret } = config.workspaceApi
  if (!clientSecret) {
    throw new ConfigError(
      `start-job needs the OAuth2 client secret: --client-secret or --client-secret-file (or ${envName('client-secret')} or ${envName('client-secret-file')})`,
    )
  }
  const stop = new AbortController()
  const onRetry = (reason: string, delayMs: number) => log.warn(`retrying in ${Math.round(delayMs)} ms: ${reason}`)
  const onInterrupted = (count: number) =>
    log.warn(`${count} snapshot run${count === 1 ? '' : 's'} left running by a process that is gone (heartbeat over ${STALE_AFTER_MS / 1000} s old): set failed, interrupted`)
  const tokens = createTokenSource({ ...config.workspaceApi, clientSecret, signal: stop.signal, onRetry })
  const api = createWorkspaceApi({ url: config.workspaceApi.graphqlUrl, tokens, pageSize: config.pageSize, signal: stop.signal, onRetry })
  // A refusal here is met again by the run's own request, which records it.
  if (config.once) tokens.get().catch(() => {})
  const { publisher, topicChecked, mongo } = await connect(config)
  let schedule: Cron | null = null
  let running: Promise<RunSummary> | null = null
  let stopped!: () => void
  const whenStopped = new Promise<void>((resolve) => (stopped = resolve))

  const onSignal = (signal: NodeJS.Signals) => {
    log.info(running ? `${signal}: stopping the run` : `${signal}: stopping`)
    stop.abort()
    schedule?.stop()
    stopped()
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)

  async function run(): Promise<RunSummary> {
    running = runSnapshot({ api, publisher, db: mongo.db(config.mongo.database), signal: stop.signal, onRetry, onInterrupted })
    try {
      const summary = await running
      report(summary)
      return summary
    } finally {
      running = null
    }
  }

  function report(summary: RunSummary) {
    const { snapshotId, outcome, workspaces, tasks, drift, error } = summary
    const fields = {
      snapshotId,
      outcome,
      workspaces,
      tasks,
      drift: drift && { missing: drift.missing, extra: drift.extra, stale: drift.stale, changedDuringRun: drift.changedDuringRun },
      durationMs: summary.finishedAt.getTime() - summary.startedAt.getTime(),
      nextRun: config.once || stop.signal.aborted ? null : (schedule?.nextRun()?.toISOString() ?? null),
      ...(error ? { error } : {}),
    }
    if (outcome === 'failed') log.error(`snapshot ${snapshotId} failed: ${error}`, fields)
    else log.info(`snapshot ${snapshotId} ${outcome}`, fields)
    if (config.once) console.log(JSON.stringify(fields))
  }

  try {
    await topicChecked
    if (config.once) {
      const summary = await run()
      if (summary.outcome === 'failed') throw new SnapshotFailedError(`snapshot ${summary.snapshotId} failed: ${summary.error}`)
      return
    }
    // A scheduled instance settles what a killed one left at once, not at its first run, which may be far off.
    const interrupted = await snapshotRecords(mongo.db(config.mongo.database)).sweepInterrupted()
    if (interrupted) onInterrupted(interrupted)
    schedule = new Cron(config.schedule, {
      mode: CRON_MODE,
      // croner waits for the returned promise before it lets the job fire again.
      protect: () => log.warn('snapshot run skipped: the previous run is still going', { nextRun: schedule?.nextRun()?.toISOString() ?? null }),
      catch: (error) => log.error(`snapshot run could not finish: ${(error as Error).message}`),
    }, async () => void (await run()))
    log.info(`start-job scheduled (${config.schedule})`, { nextRun: schedule.nextRun()?.toISOString() ?? null })
    await whenStopped
    if (running) await running
  } finally {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    schedule?.stop()
    await publisher.close().catch(() => {})
    await mongo.close().catch(() => {})
  }
}

/**
 * The Pub/Sub publisher and MongoDB, the topic checked while MongoDB connects (and, under --once, while the
 * token is fetched): the round trips of start-up at once, not one after the other. `topicChecked` is
 * awaited by the caller.
 */
async function connect(config: StartJobConfig) {
  const publisher = createPublisher({ ...config.pubsub, emulatorHost: process.env.PUBSUB_EMULATOR_HOST })
  const topicChecked = publisher.start()
  topicChecked.catch(() => {})
  const mongo = await connectMongo(config.mongo.url).catch(async (error) => {
    await publisher.close().catch(() => {})
    throw error
  })
  return { publisher, topicChecked, mongo }
}
