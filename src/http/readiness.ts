// The stores' half of readiness (contract section 5, /readyz): MongoDB answers a ping and the Pub/Sub topic
// is reachable, each checked in the background every few seconds, so a probe reads a flag and never
// reaches a store itself. An idle connector learns of an outage here rather than from its next batch.

import type { Logger } from '../log.ts'
import { withDeadline } from '../retry.ts'

// Kubernetes probes every 10 s by default: a check every 5 s answers each probe with a fresh result.
export const CHECK_INTERVAL_MS = 5_000
// A check that does not answer in this long counts as failed (a server that hangs is not ready either).
const CHECK_DEADLINE_MS = 3_000

export type Check = { name: string; run(): Promise<void> }
export type Readiness = ReturnType<typeof startReadiness>

export function startReadiness(checks: Check[], log: Logger, intervalMs = CHECK_INTERVAL_MS) {
  // Each check's last result; undefined until it has run once.
  const passing = new Map<string, boolean | undefined>(checks.map((check) => [check.name, undefined]))
  let timer: ReturnType<typeof setTimeout> | undefined
  let stopped = false

  async function runAll() {
    await Promise.all(
      checks.map(async (check) => {
        const ok = await withDeadline(check.run(), CHECK_DEADLINE_MS).then(() => true, (error) => {
          if (passing.get(check.name) !== false) log.warn(`readiness: ${check.name} check failed (${(error as Error).message})`)
          return false
        })
        if (ok && passing.get(check.name) === false) log.info(`readiness: ${check.name} check passes again`)
        passing.set(check.name, ok)
      }),
    )
    if (!stopped) timer = setTimeout(runAll, intervalMs)
  }
  runAll()

  return {
    /** Each check's last result. */
    get checks(): Record<string, boolean> {
      return Object.fromEntries([...passing].map(([name, ok]) => [name, ok === true]))
    },
    /** The checks that ran and failed last time (not those yet to run). */
    get failing(): string[] {
      return [...passing].filter(([, ok]) => ok === false).map(([name]) => name)
    },
    get ok() {
      return [...passing.values()].every((ok) => ok === true)
    },
    stop() {
      stopped = true
      clearTimeout(timer)
    },
  }
}
