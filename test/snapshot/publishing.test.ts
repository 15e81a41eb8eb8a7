// start-job through a Pub/Sub outage: the emulator frozen (SIGSTOP) for 20 s in the middle of a run, its
// publishes hanging past their deadline, is ridden out by retries: the run completes, every task is
// published, the record says `completed`, and each page's commitTime is when its answer arrived, not when
// the loop, held by the outage, took it. The retry's rules (which codes, the window, a stop) on a fake.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { AbortedError } from '../../src/snapshot/http.ts'
import { PublishError, retryingPublisher } from '../../src/snapshot/publishing.ts'
import { waitFor } from '../support/ports.ts'
import { published, type SnapshotStack, STACK_START_MS, startJobProcess, startSnapshotStack, target } from '../support/start-job.ts'

const WORKSPACES = 2
const TASKS_PER_WORKSPACE = 3_000
// Pages of 50 at 100 ms each: 120 task pages, about 12 s of reading around the outage. The outage starts
// after the first request of 1,000 events; by the fourth, two hang and the page loop waits on them, its
// next page read ahead and held.
const PAGE_SIZE = '50'
const PAGE_DELAY_MS = 100
const OUTAGE_MS = 20_000
// A page's events are stamped when its answer is parsed: well within this of the API sending it.
const ARRIVAL_SLACK_MS = 2_000
const UNAVAILABLE = 14
const NOT_FOUND = 5

describe('start-job and a Pub/Sub outage', () => {
  let stack: SnapshotStack
  beforeAll(async () => {
    stack = await startSnapshotStack({ workspaces: WORKSPACES, tasksPerWorkspace: TASKS_PER_WORKSPACE })
  }, STACK_START_MS)
  afterAll(() => {
    stack.pubsub.thaw()
    return stack.stop()
  })

  test('the emulator frozen for 20 s mid-run: the run completes, every task published, the record completed', async () => {
    const to = target('outage')
    stack.api.faults.delayMs = PAGE_DELAY_MS
    const job = startJobProcess(stack, to, ['--once', '--page-size', PAGE_SIZE])
    try {
      await waitFor('the first publish', async () => (await stack.pubsub.count(to.topic).catch(() => 0)) > 0, 30_000, 50)
      stack.pubsub.freeze()
      await Bun.sleep(OUTAGE_MS)
    } finally {
      stack.pubsub.thaw()
    }
    const run = await job.done.finally(() => (stack.api.faults.delayMs = 0))
    expect(run.exitCode).toBe(0)

    const messages = await published(stack, to.topic)
    const tasks = messages.filter(({ event }) => event.type === 'task.snapshot')
    // A request retried after its deadline may have landed too: duplicates, with the same event ids.
    expect(new Set(tasks.map(({ event }) => event.taskId)).size).toBe(WORKSPACES * TASKS_PER_WORKSPACE)
    expect(new Set(tasks.map(({ event }) => event.id)).size).toBe(WORKSPACES * TASKS_PER_WORKSPACE)
    const completed = messages.filter(({ event }) => event.type === 'snapshot.completed')
    expect(completed.length).toBeGreaterThanOrEqual(1)
    const record = await stack.mongoClient.db(to.database).collection('snapshots').findOne({ _id: completed[0]!.event.data.snapshotId })
    expect(record).toMatchObject({ outcome: 'completed', tasks: WORKSPACES * TASKS_PER_WORKSPACE })
    expect(run.stderr).toMatch(/retrying in \d+ ms: Pub\/Sub publish: /)

    // The pages read ahead while the outage held the loop were stamped on arrival, not 20 s later.
    const answers = stack.api.requests.map((request) => request.answeredAt).sort((a, b) => a - b)
    for (const commitTime of new Set(tasks.map(({ event }) => Date.parse(event.commitTime)))) {
      const arrival = answers.findLast((answeredAt) => answeredAt <= commitTime + 5)
      expect(arrival).toBeDefined()
      expect(commitTime - arrival!).toBeLessThan(ARRIVAL_SLACK_MS)
    }
  }, 120_000)
})

describe('retryingPublisher', () => {
  const failing = (codes: (number | null)[]) => {
    let calls = 0
    return {
      get calls() {
        return calls
      },
      async publish() {
        const code = codes[calls++]
        if (code !== undefined) throw Object.assign(new Error(`code ${code}`), code === null ? {} : { code })
      },
    }
  }

  test('transient codes are retried until the publish goes through', async () => {
    const publisher = failing([UNAVAILABLE, 4, 8])
    await retryingPublisher(publisher, { signal: new AbortController().signal }).publish([])
    expect(publisher.calls).toBe(4)
  }, 30_000)

  test('any other status, or an error without one, fails at once', async () => {
    for (const code of [NOT_FOUND, null]) {
      const publisher = failing([code])
      expect(await retryingPublisher(publisher, { signal: new AbortController().signal }).publish([]).catch((error) => error.message)).toBe(`code ${code}`)
      expect(publisher.calls).toBe(1)
    }
  })

  test('past its window the retry gives up with the last error', async () => {
    const publisher = failing(Array(100).fill(UNAVAILABLE))
    const error = await retryingPublisher(publisher, { signal: new AbortController().signal, windowMs: 1_500 }).publish([]).catch((error) => error)
    expect(error).toBeInstanceOf(PublishError)
    expect(error.message).toMatch(/^Pub\/Sub publish failed for \d+ s over \d+ attempts: code 14$/)
  }, 30_000)

  test('a stop ends the wait, and a hanging call, at once', async () => {
    const stop = new AbortController()
    const retrying = retryingPublisher(failing(Array(100).fill(UNAVAILABLE)), { signal: stop.signal }).publish([])
    await Bun.sleep(100)
    const stopped = Date.now()
    stop.abort()
    expect(await retrying.catch((error) => error)).toBeInstanceOf(AbortedError)
    expect(Date.now() - stopped).toBeLessThan(100)

    const hanging = new AbortController()
    const call = retryingPublisher({ publish: () => new Promise<void>(() => {}) }, { signal: hanging.signal }).publish([])
    hanging.abort()
    expect(await call.catch((error) => error)).toBeInstanceOf(AbortedError)
  })
})
