// The runs' records under a killed process: a run SIGKILLed after a few pages stays `running` while its
// heartbeat is fresh (a run started meanwhile cannot tell it from a live one, and leaves it), and once the
// heartbeat is over 30 s old the next start-job sets it `failed` with `error: "interrupted"`; a live run of
// another instance, older than 30 s but beating, is never touched.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { waitFor } from '../support/ports.ts'
import { logLines, type SnapshotStack, STACK_START_MS, startJobProcess, startSnapshotStack, target } from '../support/start-job.ts'
import { startWorkspaceApi, type WorkspaceApi } from '../support/workspace-api.ts'

// The contract's figure: a heartbeat over 30 s old means the process is gone.
const STALE_AFTER_MS = 30_000
// Slow pages of one task: the killed run and the live one last minutes if left alone.
const SLOW_PAGE_MS = 300

describe('snapshot records and their heartbeat', () => {
  let stack: SnapshotStack
  let slow: WorkspaceApi
  beforeAll(async () => {
    stack = await startSnapshotStack({ workspaces: 2, tasksPerWorkspace: 6 })
    slow = await startWorkspaceApi({ issuer: stack.oidc, workspaces: 2, tasksPerWorkspace: 500 })
    slow.faults.delayMs = SLOW_PAGE_MS
  }, STACK_START_MS)
  afterAll(async () => {
    await slow.stop()
    await stack.stop()
  })

  test('a SIGKILLed run is set failed (interrupted) once its heartbeat is 30 s old; a live run is never touched', async () => {
    const to = target('heartbeat')
    const records = stack.mongoClient.db(to.database).collection('snapshots')
    const recordOf = async (id: string) => (await records.findOne({ _id: id as any }))!
    const slowRun = () => startJobProcess({ ...stack, api: slow }, to, ['--once', '--page-size', '1'])
    const idOfRunning = async (others: string[]) => (await records.findOne({ outcome: 'running', _id: { $nin: others as any[] } }))?._id as string | undefined

    const killed = slowRun()
    await waitFor('the run a few pages in', () => slow.requests.length >= 4, 30_000, 50)
    killed.process.kill('SIGKILL')
    await killed.done
    const killedId = (await idOfRunning([]))!
    expect(killedId).toBeDefined()

    // Another instance's run, alive for the whole test.
    const live = slowRun()
    let liveId: string | undefined
    await waitFor('the live run', async () => Boolean((liveId = await idOfRunning([killedId]))), 30_000, 50)

    // Fresh heartbeats: a run now leaves both records alone.
    const early = await startJobProcess(stack, to, ['--once']).done
    expect(early.exitCode).toBe(0)
    expect(await recordOf(killedId)).toMatchObject({ outcome: 'running', heartbeatAt: expect.any(Date) })

    // Past 30 s since the killed run's last heartbeat and since the live run's start.
    const since = Math.max(((await recordOf(killedId)).heartbeatAt as Date).getTime(), ((await recordOf(liveId!)).startedAt as Date).getTime())
    await waitFor('30 s without a heartbeat of the killed run', () => Date.now() - since > STALE_AFTER_MS + 1_000, STALE_AFTER_MS + 30_000, 500)
    const late = await startJobProcess(stack, to, ['--once']).done
    expect(late.exitCode).toBe(0)
    expect(await recordOf(killedId)).toMatchObject({ outcome: 'failed', error: 'interrupted', finishedAt: expect.any(Date) })
    expect(logLines(late.stderr).some((line) => line.level === 'warn' && line.msg.startsWith('1 snapshot run left running by a process that is gone'))).toBe(true)

    // The live run started over 30 s ago, and its heartbeat kept it.
    const liveRecord = await recordOf(liveId!)
    expect(liveRecord).toMatchObject({ outcome: 'running' })
    expect(Date.now() - liveRecord.startedAt.getTime()).toBeGreaterThan(STALE_AFTER_MS)
    expect(Date.now() - liveRecord.heartbeatAt.getTime()).toBeLessThan(STALE_AFTER_MS)
    live.process.kill('SIGTERM')
    expect((await live.done).exitCode).toBe(0)
    expect(await recordOf(liveId!)).toMatchObject({ outcome: 'aborted' })
  }, 120_000)
})
