// One start-job run: every workspace and task of the API as `*.snapshot` events on Pub/Sub, the drift of
// the projection, a closing `snapshot.completed`, and the run's record in `snapshots` (contract sections 2,
// 4 and 6). Guarantees: the record says `running` from the start, with a heartbeat, and `completed` only once
// every event, `snapshot.completed` last, was acknowledged; a run that stops early says `failed` or
// `aborted`, whatever stopped it (a page, a publish, the drift comparison); records left `running` by a
// process that is gone are set `failed` first. Pages are published while the next ones are read, with at
// most MAX_PUBLISHES_IN_FLIGHT requests of PUBLISH_BATCH events held, each retried through a Pub/Sub outage.

import type { Db } from 'mongodb'
import { type Entity, type EventRow, type TaskEvent, snapshotEvent } from '../events/events.ts'
import { snapshotEventId, snapshotId as snapshotIdOf } from '../events/ids.ts'
import { COLLECTIONS } from '../sinks/mongo.ts'
import type { Publisher } from '../sinks/pubsub.ts'
import { type Drift, checkpointEventId, createDriftCheck, projectionBatches } from './drift.ts'
import { AbortedError } from './http.ts'
import { retryingPublisher } from './publishing.ts'
import { snapshotRecords } from './records.ts'
import type { Page, WorkspaceApi } from './workspace-api.ts'

// Requests published at once while the next pages are read: each task's ordering key appears once in a run,
// so the order between requests does not matter, and two requests of 1,000 events are about 1.5 MB held.
const MAX_PUBLISHES_IN_FLIGHT = 2
// Pages are gathered into Publish requests of up to Pub/Sub's limit of 1,000 messages: against the emulator,
// requests of 1,000 took half the time of one request per page of 200.
const PUBLISH_BATCH = 1_000

export type Outcome = 'completed' | 'failed' | 'aborted'

export type RunSummary = {
  snapshotId: string
  outcome: Outcome
  startedAt: Date
  finishedAt: Date
  workspaces: number
  tasks: number
  /** Null when the run ended before the drift was settled. */
  drift: Drift | null
  error?: string
}

export type RunDependencies = {
  api: WorkspaceApi
  publisher: Pick<Publisher, 'publish'>
  db: Db
  signal: AbortSignal
  /** Told of each retried publish. */
  onRetry?: (reason: string, delayMs: number) => void
  /** Told of the records set `failed` because their process is gone. */
  onInterrupted?: (count: number) => void
}

export async function runSnapshot({ api, db, signal, onRetry, onInterrupted, ...dependencies }: RunDependencies): Promise<RunSummary> {
  const records = snapshotRecords(db)
  // Before the first page: whatever the projection applies after the checkpoint is newer than the run's view of it.
  const [interrupted, changedAfter] = await Promise.all([records.sweepInterrupted(), checkpointEventId(db.collection(COLLECTIONS.checkpoints))])
  if (interrupted) onInterrupted?.(interrupted)
  const startedAt = new Date()
  const snapshotId = snapshotIdOf(startedAt)
  const publisher = retryingPublisher(dependencies.publisher, { signal, onRetry })
  const counts = { workspaces: 0, tasks: 0 }
  const drift = createDriftCheck()
  const inFlight = new Set<Promise<void>>()
  let ordinal = 0
  let publishError: unknown = null

  const record = await records.begin(snapshotId, startedAt, { ...counts, drift: null })

  const events = <T extends object>(entity: Entity, page: Page<T>): TaskEvent[] => {
    const commitTime = page.readAt.toISOString()
    return page.nodes.map((data) => snapshotEvent(entity, data as EventRow, { id: snapshotEventId(snapshotId, ordinal++), source: 'snapshot', lsn: null, xid: null, commitTime }))
  }

  let pending: TaskEvent[] = []
  async function publish(more: TaskEvent[], flush = false) {
    pending.push(...more)
    if (pending.length < PUBLISH_BATCH && !flush) return
    const batch = pending
    pending = []
    if (!batch.length) return
    while (inFlight.size >= MAX_PUBLISHES_IN_FLIGHT) await Promise.race(inFlight)
    if (publishError) throw publishError
    const publishing = publisher.publish(batch).catch((error) => void (publishError ??= error))
    const entry = publishing.finally(() => inFlight.delete(entry))
    inFlight.add(entry)
  }

  async function settlePublishes() {
    await publish([], true)
    await Promise.all(inFlight)
    if (publishError) throw publishError
  }

  try {
    for await (const page of api.workspaces()) {
      counts.workspaces += page.nodes.length
      await publish(events('workspace', page))
      for (const workspace of page.nodes) {
        for await (const taskPage of api.tasks(workspace.id)) {
          counts.tasks += taskPage.nodes.length
          for (const task of taskPage.nodes) drift.observe(task)
          await publish(events('task', taskPage))
        }
      }
    }
    await settlePublishes()
    if (signal.aborted) throw new AbortedError()
    const found = await drift.compare(projectionBatches(db.collection(COLLECTIONS.tasks), signal), changedAfter)
    if (signal.aborted) throw new AbortedError()
    const finishedAt = new Date()
    const summary: RunSummary = { snapshotId, outcome: 'completed', startedAt, finishedAt, ...counts, drift: found }
    await publisher.publish([completedEvent(summary, ordinal)])
    await record.finish({ finishedAt, outcome: 'completed', ...counts, drift: found })
    return summary
  } catch (error) {
    // Publishes already under way are let finish before the record is written.
    await Promise.allSettled(inFlight)
    const outcome: Outcome = error instanceof AbortedError || signal.aborted ? 'aborted' : 'failed'
    const message = outcome === 'aborted' ? undefined : (error as Error).message
    const finishedAt = new Date()
    await record.finish({ finishedAt, outcome, ...counts, ...(message ? { error: message } : {}) })
    return { snapshotId, outcome, startedAt, finishedAt, ...counts, drift: null, ...(message ? { error: message } : {}) }
  }
}

function completedEvent(summary: RunSummary, ordinal: number): TaskEvent {
  const { snapshotId, startedAt, finishedAt, workspaces, tasks, drift } = summary
  return {
    id: snapshotEventId(snapshotId, ordinal),
    type: 'snapshot.completed',
    source: 'snapshot',
    workspaceId: null,
    taskId: null,
    lsn: null,
    xid: null,
    commitTime: finishedAt.toISOString(),
    data: { snapshotId, startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString(), workspaces, tasks, drift },
    previous: null,
  }
}
