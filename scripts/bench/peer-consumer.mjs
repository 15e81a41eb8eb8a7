// bench:replication's contender "peer": npm pg-logical-replication (on pg) with its Wal2JsonPlugin, under Node.
// Same wal2json options as our source sends (format-version 2); the library parses every message with JSON.parse
// and, with its default auto-acknowledge, sends a standby status update for each one. Streams a slot from its
// start, counts row changes, and stops at the end marker. Prints one JSON line on stdout:
//   {"done":true,"changes":N,"commits":C,"peakRssMb":M}
// Usage: node scripts/bench/peer-consumer.mjs --port P --database D --slot S --marker PREFIX

import { readFileSync, writeSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { LogicalReplicationService, Wal2JsonPlugin } from 'pg-logical-replication'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    database: { type: 'string' },
    slot: { type: 'string' },
    marker: { type: 'string' },
  },
})

const service = new LogicalReplicationService({
  host: '127.0.0.1',
  port: Number(values.port),
  user: 'postgres',
  database: values.database,
})
const plugin = new Wal2JsonPlugin({
  formatVersion: '2',
  includeXids: true,
  includeTimestamp: true,
  includeLsn: true,
  includeTransaction: true,
  includeTypeOids: true,
  includeTypes: false,
  addTables: 'public.workspaces,public.tasks',
  addMsgPrefixes: values.marker,
})

let changes = 0
let commits = 0
let finished = false

service.on('data', (_lsn, message) => {
  switch (message.action) {
    case 'I':
    case 'U':
    case 'D':
    case 'T':
      changes++
      break
    case 'C':
      commits++
      break
    case 'M':
      if (message.prefix === values.marker && !finished) finish()
  }
})
service.on('error', (error) => {
  if (finished) return
  console.error('peer:', error)
  process.exit(1)
})

function finish() {
  finished = true
  writeSync(1, JSON.stringify({ done: true, changes, commits, peakRssMb: peakRssMb() }) + '\n')
  service.stop().finally(() => process.exit(0))
}

function peakRssMb() {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))
  return match ? Math.round(Number(match[1]) / 1024) : NaN
}

service.subscribe(plugin, values.slot).catch((error) => {
  if (finished) return
  console.error('peer:', error)
  process.exit(1)
})
