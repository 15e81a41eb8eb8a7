// The HTTP API of extract-tasks (contract section 5) on Elysia. The routes read the service's status
// through one function, so they hold no state of their own.

import { Elysia } from 'elysia'
import type { SlotHolder } from '../replication/source.ts'

export type ServiceState = 'starting' | 'streaming' | 'reconnecting' | 'standby' | 'stopping'

export type Status = {
  name: string
  version: string
  uptimeSeconds: number
  slot: string
  state: ServiceState
  confirmedLsn: string
  lastEventId: string | null
  lagBytes: number | null
  eventsTotal: number
  /** While standing by: the process that streams from the slot (its walsender pid, client address, application). */
  slotHolder: SlotHolder | null
  /** Sinks whose writes fail at the moment: the stream is held until they succeed. */
  failingSinks: string[]
  /** Heartbeat round trip through the WAL, in ms; null before the first one returns. */
  replicationLatencyMs: number | null
  /**
   * Messages read from the slot and not yet durable and published, and whether reading is paused because
   * they reached the limit (backpressure from a slow or failing sink).
   */
  pendingChanges: number
  readingPaused: boolean
  ready: boolean
}

export function createHttpApp(status: () => Status) {
  return new Elysia()
    .get('/info', () => {
      const { ready: _ready, ...info } = status()
      return info
    })
    .get('/healthz', () => ({ status: 'ok' }))
    .get('/readyz', ({ set }) => {
      const current = status()
      if (!current.ready) set.status = 503
      return { ready: current.ready, state: current.state, failingSinks: current.failingSinks }
    })
    .get('/metrics', ({ set }) => {
      set.headers['content-type'] = 'text/plain; version=0.0.4'
      return metrics(status())
    })
}

function metrics(status: Status): string {
  const lines = [
    '# HELP task_connector_events_total Events made durable and published.',
    '# TYPE task_connector_events_total counter',
    `task_connector_events_total ${status.eventsTotal}`,
    '# HELP task_connector_lag_bytes WAL between the server position and the confirmed LSN.',
    '# TYPE task_connector_lag_bytes gauge',
    `task_connector_lag_bytes ${status.lagBytes ?? 'NaN'}`,
    '# HELP task_connector_replication_latency_seconds Heartbeat round trip through the WAL.',
    '# TYPE task_connector_replication_latency_seconds gauge',
    `task_connector_replication_latency_seconds ${status.replicationLatencyMs === null ? 'NaN' : status.replicationLatencyMs / 1000}`,
    '# HELP task_connector_streaming Whether the connector streams with every sink healthy.',
    '# TYPE task_connector_streaming gauge',
    `task_connector_streaming ${status.state === 'streaming' ? 1 : 0}`,
    '# HELP task_connector_uptime_seconds Seconds since start.',
    '# TYPE task_connector_uptime_seconds gauge',
    `task_connector_uptime_seconds ${status.uptimeSeconds}`,
  ]
  return lines.join('\n') + '\n'
}
