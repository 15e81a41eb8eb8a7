// Events too large for a sink (contract section 2, `omitted`): the copy a sink can hold, with the largest
// values of `data` and `previous` left out and named, largest first, until it fits. Pure. Guarantees: an
// event that fits is returned as it is (the same object); a copy never loses a value it did not have to,
// and names every value it left out, with those an earlier copy already named (a replay of a stored copy).

import type { EventRow, TaskEvent } from './events.ts'

export type Omitted = { data: string[]; previous: string[] }
type Part = keyof Omitted

/** `event` as it fits in `limit` by `size`: the event itself when it does, else a copy with `omitted`. */
export function fitEvent(event: TaskEvent, size: (event: TaskEvent) => number, limit: number): TaskEvent {
  let bytes = size(event)
  if (bytes <= limit) return event
  const copy: TaskEvent = { ...event, data: event.data && { ...event.data }, previous: event.previous && { ...event.previous } }
  const omitted: Omitted = { data: [...(event.omitted?.data ?? [])], previous: [...(event.omitted?.previous ?? [])] }
  copy.omitted = omitted
  for (const value of largestFirst(copy)) {
    delete copy[value.part]![value.name]
    omitted[value.part].push(value.name)
    // The estimate is what the value weighed as JSON; the sink's own measure decides.
    bytes -= value.bytes
    if (bytes <= limit && (bytes = size(copy)) <= limit) break
  }
  return copy
}

/**
 * The values of `previous` and of `data`, heaviest first; of two that weigh the same, `previous`'s goes
 * first, since `data` (the row as it is now) is what most readers want.
 */
function largestFirst(event: TaskEvent): { part: Part; name: string; bytes: number }[] {
  const values: { part: Part; name: string; bytes: number }[] = []
  for (const part of ['previous', 'data'] as const) {
    const row: EventRow | null = event[part]
    if (row) for (const name of Object.keys(row)) values.push({ part, name, bytes: jsonBytes(row[name]) + name.length })
  }
  // Array.prototype.sort is stable: equal weights keep `previous` ahead.
  return values.sort((a, b) => b.bytes - a.bytes)
}

function jsonBytes(value: unknown): number {
  return value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value))
}

/** The warn line for an event whose copies, one per sink (named, with its limit), left values out. */
export function omittedLine(id: string, copies: { sink: string; limit: number; copy: TaskEvent }[]): string {
  const told = copies.map(({ sink, limit, copy }) => {
    const names = (['data', 'previous'] as const).flatMap((part) => (copy.omitted?.[part] ?? []).map((name) => `${part}.${name}`))
    return `${sink} (over its ${limit.toLocaleString('en-US')} bytes) without ${names.join(', ')}`
  })
  return `event ${id} is too large: written to ${told.join('; to ')} (named in its omitted)`
}
