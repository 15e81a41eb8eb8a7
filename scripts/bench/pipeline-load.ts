// bench:pipeline's latency load: single-row transactions at a steady rate, paced by the clock rather than by
// their answers, so a slow consumer never slows the load down. `inserts`: each inserts a task; `mixed`: every
// other one updates a task inserted earlier in the run instead (a row the connector has seen).

import type postgres from 'postgres'

export type LoadResult = {
  issued: number
  committed: number
  failed: number
  /** Wall-clock times (ms since the epoch) the load started and stopped issuing. */
  startedAt: number
  endedAt: number
  /** How far behind its schedule the load fell at worst, in ms (the pacing's own error). */
  maxScheduleLagMs: number
}

const STATUSES = ['todo', 'in_progress', 'blocked', 'done', 'cancelled'] as const

/** Issues `ratePerSecond` transactions a second for `seconds`, then waits for the last answers. */
export type LoadMix = 'inserts' | 'mixed'

/** `stop`: the load ends there, before its `seconds` are up (bench:http runs it under phases of unknown length). */
export async function runPacedLoad(sql: postgres.Sql, workspaceId: string, ratePerSecond: number, seconds: number, mix: LoadMix, stop?: AbortSignal): Promise<LoadResult> {
  const taskIds: string[] = []
  const answers: Promise<unknown>[] = []
  let committed = 0
  let failed = 0
  let firstError: unknown = null
  let maxScheduleLagMs = 0

  const issue = (n: number) => {
    let query: Promise<unknown>
    if (mix === 'inserts' || n % 2 === 0 || taskIds.length === 0) {
      const id = crypto.randomUUID()
      taskIds.push(id)
      query = sql`insert into tasks (id, workspace_id, title, status, priority, labels, metadata)
                  values (${id}, ${workspaceId}, ${'latency task ' + n}, 'todo', ${n % 5}, ${['latency']}, ${sql.json({ n })})`
    } else {
      const id = taskIds[(n * 7919) % taskIds.length]!
      query = sql`update tasks set status = ${STATUSES[n % STATUSES.length]!}, priority = ${n % 5}, updated_at = now() where id = ${id}`
    }
    answers.push(
      query.then(
        () => void committed++,
        (error) => {
          failed++
          firstError ??= error
        },
      ),
    )
  }

  const total = Math.round(ratePerSecond * seconds)
  const startedAt = Date.now()
  const origin = performance.now()
  let issued = 0
  while (issued < total && !stop?.aborted) {
    const elapsed = performance.now() - origin
    const due = Math.min(total, Math.floor((elapsed / 1000) * ratePerSecond) + 1)
    if (due > issued) maxScheduleLagMs = Math.max(maxScheduleLagMs, elapsed - (issued / ratePerSecond) * 1000)
    while (issued < due) issue(issued++)
    await Bun.sleep(1)
  }
  const endedAt = Date.now()
  await Promise.all(answers)
  if (failed) throw new Error(`${failed} of ${issued} load transactions failed; the first: ${(firstError as Error)?.message ?? firstError}`)
  return { issued, committed, failed, startedAt, endedAt, maxScheduleLagMs }
}
