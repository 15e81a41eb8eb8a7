// A consumer process for tests that must measure or kill it: streams a slot, acknowledges what it reads,
// and reports on stdout, one JSON object a line:
//   {"commit":"0/…","changes":N}  after each acknowledged transaction (with --report-commits)
//   {"done":true,"changes":N,"peakRssMb":M}  when --until-changes is reached
// Usage: bun test/support/consume.ts --port P --database D --slot S [--resume LSN] [--until-changes N] [--report-commits]

import { writeSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { formatLsn, parseLsn } from '../../src/replication/lsn.ts'
import { openSource } from '../../src/replication/source.ts'
import { testLog } from './log.ts'
import { peakRssMb } from './memory.ts'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    database: { type: 'string' },
    slot: { type: 'string' },
    resume: { type: 'string', default: '0/0' },
    'until-changes': { type: 'string' },
    'report-commits': { type: 'boolean', default: false },
  },
})

const until = values['until-changes'] ? Number(values['until-changes']) : Infinity
const source = openSource({
  connection: { host: '127.0.0.1', port: Number(values.port), user: 'postgres', database: values.database },
  slot: values.slot!,
  schema: 'public',
  tables: ['workspaces', 'tasks'],
  resumeLsn: parseLsn(values.resume!),
  statusIntervalMs: 1_000,
  reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 },
  log: testLog,
})

let changes = 0
// Synchronous writes: what the parent reads is recorded before it is acknowledged, as a checkpoint would be.
const out = (line: object) => writeSync(1, JSON.stringify(line) + '\n')
for (;;) {
  const { firstSeq, messages } = await source.read()
  let lines = ''
  for (const message of messages) {
    if (message.kind === 'insert' || message.kind === 'update' || message.kind === 'delete' || message.kind === 'truncate') changes++
    if (message.kind === 'commit' && values['report-commits']) lines += JSON.stringify({ commit: formatLsn(message.commitLsn), changes }) + '\n'
  }
  if (lines) writeSync(1, lines)
  if (messages.length) source.acknowledge(firstSeq + messages.length - 1)
  if (changes >= until) break
}
out({ done: true, changes, peakRssMb: peakRssMb() })
await source.stop()
process.exit(0)
