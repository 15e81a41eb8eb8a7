// An event's JSON, made once: Pub/Sub's message carries it, and the live stream frames the same bytes.
// Guarantees: the bytes are JSON.stringify(event) as UTF-8; they live as long as the event object does.

import type { TaskEvent } from './events.ts'

const encoded = new WeakMap<TaskEvent, Buffer>()

export function eventJson(event: TaskEvent): Buffer {
  let json = encoded.get(event)
  if (!json) encoded.set(event, (json = Buffer.from(JSON.stringify(event))))
  return json
}
