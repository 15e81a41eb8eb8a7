// bench:replication's contender "ours": our change source (full decode) in a process of its own.
// Streams a slot from its start, acknowledges every delivery, counts row changes, and stops at the end
// marker (a non-transactional logical message written after the workload). Prints on stdout, one JSON object a line:
//   {"streaming":true}  once the stream is up (a live workload starts then)
//   {"done":true,"changes":N,"commits":C,"unchangedToastUpdates":U,"catalogReads":R,"peakRssMb":M}  at the marker
// where U counts the updates that left a TOASTed value out and R the source's catalog readings.
// Usage: bun scripts/bench/our-consumer.ts --port P --database D --slot S --marker PREFIX

import { writeSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { openSource } from '../../src/replication/source.ts'
import { testLog } from '../../test/support/log.ts'
import { peakRssMb } from '../../test/support/memory.ts'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    database: { type: 'string' },
    slot: { type: 'string' },
    marker: { type: 'string' },
  },
})

const marker = values.marker!
const source = openSource({
  connection: { host: '127.0.0.1', port: Number(values.port), user: 'postgres', database: values.database },
  slot: values.slot!,
  schema: 'public',
  tables: ['workspaces', 'tasks'],
  resumeLsn: 0n,
  statusIntervalMs: 10_000,
  // The daemon's heartbeat rides on a message prefix; the end marker takes its place here.
  messagePrefix: marker,
  reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 },
  log: testLog,
})

// The bench writes a live workload only once the stream is up, lest it be read as a backlog.
void (async () => {
  while (source.state !== 'streaming' && source.state !== 'stopped') await Bun.sleep(1)
  if (source.state === 'streaming') writeSync(1, JSON.stringify({ streaming: true }) + '\n')
})()

let changes = 0
let commits = 0
let unchangedToastUpdates = 0
let done = false
while (!done) {
  const { firstSeq, messages } = await source.read()
  if (messages.length === 0) throw new Error(`the source stopped before the end marker (${source.state})`)
  // What follows the marker in the same delivery is not the workload's.
  for (const message of messages) {
    if (done) break
    switch (message.kind) {
      case 'update':
        if (message.unchangedToast.length) unchangedToastUpdates++
        changes++
        break
      case 'insert':
      case 'delete':
      case 'truncate':
        changes++
        break
      case 'commit':
        commits++
        break
      case 'message':
        if (message.prefix === marker) done = true
    }
  }
  source.acknowledge(firstSeq + messages.length - 1)
}
writeSync(1, JSON.stringify({ done: true, changes, commits, unchangedToastUpdates, catalogReads: source.catalogReads, peakRssMb: peakRssMb() }) + '\n')
await source.stop()
process.exit(0)
