// start-job on its schedule: runs that take longer than the interval never overlap (the due run is skipped
// with a log line), later runs complete, each logs its next run; SIGTERM during a run stops it, records it
// `aborted` and exits 0; SIGTERM between runs exits at once.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { waitFor } from '../support/ports.ts'
import { logLines, RUN_MS, type SnapshotStack, STACK_START_MS, startJobProcess, startSnapshotStack, target } from '../support/start-job.ts'

const EVERY_2_SECONDS = '*/2 * * * * *'
// One workspace page and two task pages at 1.7 s each: a run of about 5 s.
const PAGE_DELAY_MS = 1_700

describe('start-job --schedule', () => {
  let stack: SnapshotStack
  beforeAll(async () => {
    stack = await startSnapshotStack({ workspaces: 2, tasksPerWorkspace: 6 })
    stack.api.faults.delayMs = PAGE_DELAY_MS
  }, STACK_START_MS)
  afterAll(() => stack.stop())

  const records = (database: string) => stack.mongoClient.db(database).collection('snapshots').find().sort({ startedAt: 1 }).toArray()

  test('every 2 s with 5 s runs: no overlap, later runs complete, SIGTERM mid-run records aborted and exits 0', async () => {
    const to = target('schedule')
    const job = startJobProcess(stack, to, ['--schedule', EVERY_2_SECONDS])
    await waitFor('two completed runs', async () => (await records(to.database)).filter((run) => run.outcome === 'completed').length >= 2, 30_000, 200)
    await waitFor('a third run under way', async () => (await records(to.database)).at(-1)!.outcome === 'running', 10_000, 100)
    job.process.kill('SIGTERM')
    const { exitCode, stderr } = await job.done
    expect(exitCode).toBe(0)

    const runs = await records(to.database)
    expect(runs.length).toBeGreaterThanOrEqual(3)
    expect(runs.slice(0, -1).every((run) => run.outcome === 'completed')).toBe(true)
    expect(runs.at(-1)).toMatchObject({ outcome: 'aborted' })
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.startedAt.getTime()).toBeGreaterThanOrEqual(runs[i - 1]!.finishedAt.getTime())

    const lines = logLines(stderr)
    expect(lines.filter((line) => line.msg.startsWith('snapshot run skipped')).length).toBeGreaterThan(0)
    const completed = lines.filter((line) => line.outcome === 'completed')
    expect(completed).toHaveLength(runs.length - 1)
    for (const line of completed) expect(Date.parse(line.nextRun)).toBeGreaterThan(Date.parse(line.time))
  }, 60_000)

  test('SIGTERM between runs exits at once', async () => {
    const job = startJobProcess(stack, target('idle'), ['--schedule', '0 0 1 1 *'])
    await waitFor('the schedule', () => job.stderr().includes('start-job scheduled'), 20_000)
    const signalled = Date.now()
    job.process.kill('SIGTERM')
    const { exitCode } = await job.done
    expect(exitCode).toBe(0)
    expect(Date.now() - signalled).toBeLessThan(2_000)
  }, RUN_MS)

  test('--once and SIGTERM mid-run: exit 0, the record says aborted', async () => {
    const to = target('once-aborted')
    const job = startJobProcess(stack, to, ['--once'])
    await waitFor('the run under way', async () => (await records(to.database)).length === 1, 20_000, 100)
    job.process.kill('SIGTERM')
    const { exitCode, stdout } = await job.done
    expect(exitCode).toBe(0)
    expect(await records(to.database)).toMatchObject([{ outcome: 'aborted', finishedAt: expect.any(Date) }])
    expect(JSON.parse(stdout)).toMatchObject({ outcome: 'aborted' })
  }, RUN_MS)
})
