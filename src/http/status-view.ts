// What /info and its history say about the service, beyond the pipeline's own status: the sinks failing by
// the readiness checks as well as by writes (an idle connector writes nothing, so it learns of a dead sink
// only from its checks), and since when the state holds. Guarantees: a sink is named while either says it
// fails; `stateSince` is exact to the resolution of the reads, which the history makes every 5 s at least.

import type { ServiceState, Status } from './server.ts'

export type StatusView = Status & { stateSince: string }

export function createStatusView(status: () => Status, failingChecks: () => string[], now = Date.now) {
  let state: ServiceState | null = null
  let since = now()

  return (): StatusView => {
    const current = status()
    if (current.state !== state) {
      state = current.state
      since = now()
    }
    const failingSinks = [...current.failingSinks]
    for (const sink of failingChecks()) if (!failingSinks.includes(sink)) failingSinks.push(sink)
    return { ...current, failingSinks, stateSince: new Date(since).toISOString() }
  }
}
