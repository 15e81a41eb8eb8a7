// Micro-benchmark of the wal2json decoder against plain JSON.parse, on a tasks-row UPDATE as PostgreSQL 15 +
// wal2json 2.5 write it. Both sides start from the payload bytes (the decoder needs the text first, as JSON.parse
// does). Prints one JSON line; `ratio` is the decoder's time per message over JSON.parse's (lower is better).
// `exactRatio` is the same for a message holding numeric and int8-beyond-2^53 columns, which takes the exact path.
//   bun scripts/bench-decode.ts

import { decodeWal2json } from '../src/decode/wal2json.ts'
import type { TableColumns } from '../src/decode/types.ts'

const DISTINCT = 1024 // distinct payloads, so no engine cache answers for a string it has already seen
const PASSES = 4 // over the payloads, per round
const WARM_ROUNDS = 20
const ROUNDS = 101

const columns: TableColumns = new Map([
  ['public.tasks', [
    ['id', 2950, 'uuid'], ['workspace_id', 2950, 'uuid'], ['title', 25, 'text'], ['status', 25, 'text'],
    ['priority', 23, 'integer'], ['assignee_id', 2950, 'uuid'], ['due_at', 1184, 'timestamp with time zone'],
    ['labels', 1009, 'text[]'], ['metadata', 3802, 'jsonb'], ['created_at', 1184, 'timestamp with time zone'],
    ['updated_at', 1184, 'timestamp with time zone'],
  ].map(([name, typeOid, typeName]) => ({ name: name as string, typeOid: typeOid as number, typeName: typeName as string, toastable: ![2950, 23, 1184].includes(typeOid as number) }))],
])

function tasksUpdate(i: number): string {
  const id = `22222222-2222-2222-2222-${String(i).padStart(12, '0')}`
  const micros = String(36113 + i).padStart(6, '0')
  return String.raw`{"action":"U","xid":${733 + i},"timestamp":"2026-11-28 02:01:25.072949+00","lsn":"0/${(0x1959548 + i * 512).toString(16).toUpperCase()}","schema":"public","table":"tasks","columns":[{"name":"id","type":"uuid","typeoid":2950,"value":"${id}"},{"name":"workspace_id","type":"uuid","typeoid":2950,"value":"11111111-1111-1111-1111-111111111111"},{"name":"title","type":"text","typeoid":25,"value":"task number ${i}"},{"name":"status","type":"text","typeoid":25,"value":"done"},{"name":"priority","type":"integer","typeoid":23,"value":${i % 5}},{"name":"assignee_id","type":"uuid","typeoid":2950,"value":null},{"name":"due_at","type":"timestamp with time zone","typeoid":1184,"value":"2026-01-01 08:00:00+00"},{"name":"labels","type":"text[]","typeoid":1009,"value":"{a,\"b c\",NULL}"},{"name":"metadata","type":"jsonb","typeoid":3802,"value":"{\"k\": [${i}, 2.5, {\"z\": null}]}"},{"name":"created_at","type":"timestamp with time zone","typeoid":1184,"value":"2026-11-28 02:01:25.${micros}+00"},{"name":"updated_at","type":"timestamp with time zone","typeoid":1184,"value":"2026-11-28 02:01:25.${micros}+00"}],"identity":[{"name":"id","type":"uuid","typeoid":2950,"value":"${id}"}]}`
}

function exactInsert(i: number): string {
  return `{"action":"I","xid":${735 + i},"timestamp":"2026-11-28 02:01:25.088993+00","lsn":"0/195D340","schema":"public","table":"other","columns":[{"name":"id","type":"bigint","typeoid":20,"value":${9007199254740993n + BigInt(i)}},{"name":"n","type":"numeric","typeoid":1700,"value":12345678901234567890.${i}},{"name":"f","type":"double precision","typeoid":701,"value":1.5},{"name":"b","type":"boolean","typeoid":16,"value":true},{"name":"r","type":"real","typeoid":700,"value":null}]}`
}

const encoder = new TextEncoder()
const utf8 = new TextDecoder()
let sink: unknown

/**
 * Short rounds of each side in turn: the ratio is the median over rounds of decoder time / JSON.parse time, so a
 * neighbour's load on a shared machine slows both sides of a round alike; the rates are each side's best round.
 */
function compare(payloads: Uint8Array[]): { jsonParsePerSec: number; decoderPerSec: number; ratio: number } {
  const reference = (bytes: Uint8Array) => JSON.parse(utf8.decode(bytes))
  const decoder = (bytes: Uint8Array) => decodeWal2json(bytes, columns)
  for (let warm = 0; warm < WARM_ROUNDS; warm++) {
    time(reference, payloads)
    time(decoder, payloads)
  }
  const ratios: number[] = []
  let best = { reference: Infinity, decoder: Infinity }
  for (let round = 0; round < ROUNDS; round++) {
    const referenceMs = time(reference, payloads)
    const decoderMs = time(decoder, payloads)
    ratios.push(decoderMs / referenceMs)
    best = { reference: Math.min(best.reference, referenceMs), decoder: Math.min(best.decoder, decoderMs) }
  }
  ratios.sort((a, b) => a - b)
  const perSec = (ms: number) => Math.round((payloads.length * PASSES) / (ms / 1000))
  return {
    jsonParsePerSec: perSec(best.reference),
    decoderPerSec: perSec(best.decoder),
    ratio: Number(ratios[ratios.length >> 1]!.toFixed(2)),
  }
}

function time(run: (bytes: Uint8Array) => unknown, payloads: Uint8Array[]): number {
  const start = performance.now()
  for (let pass = 0; pass < PASSES; pass++) for (const payload of payloads) sink = run(payload)
  return performance.now() - start
}

const updates = Array.from({ length: DISTINCT }, (_, i) => encoder.encode(tasksUpdate(i)))
const exact = Array.from({ length: DISTINCT }, (_, i) => encoder.encode(exactInsert(i)))
const plain = compare(updates)
const exactPath = compare(exact)

console.log(JSON.stringify({
  message: `tasks U, ${updates[0]!.length} bytes`,
  ...plain,
  exactMessage: `numeric + int8 > 2^53 I, ${exact[0]!.length} bytes`,
  exactJsonParsePerSec: exactPath.jsonParsePerSec,
  exactDecoderPerSec: exactPath.decoderPerSec,
  exactRatio: exactPath.ratio,
}))
if (sink === undefined) process.exitCode = 1
