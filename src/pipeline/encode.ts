// What each sink is given for an event, made once as the event is built: its Pub/Sub message, and the copy
// MongoDB's history holds (each fitted to its sink's limit, events/omit.ts), with what it weighs. Guarantees:
// an event is serialised once, whatever the retries (the message is what is published, again if need be); an
// event too large for a sink is reported once a sink; the weight counts what a batch holds in its messages.

import type { TaskEvent } from '../events/events.ts'
import { MAX_DOCUMENT_BYTES, storedCopy } from '../sinks/mongo.ts'
import { MAX_MESSAGE_BYTES, type OutgoingMessage, encodeEvent } from '../sinks/pubsub.ts'
import type { SinkName } from './delivery.ts'

/** Events as the sinks take them: the events, their messages, the copies `task_events` holds, and their weight. */
export type EncodedEvents = { events: TaskEvent[]; messages: OutgoingMessage[]; stored: TaskEvent[]; bytes: number }

// A document's BSON is at most about eight times its JSON (an array of small numbers: 2 bytes a number in
// JSON, a type byte, an index key and a double in BSON): an event whose JSON is under this fits in MongoDB
// without measuring it.
const SURELY_FITS_MONGO_JSON_BYTES = MAX_DOCUMENT_BYTES / 8

export const LIMITS: Record<SinkName, number> = { mongo: MAX_DOCUMENT_BYTES, pubsub: MAX_MESSAGE_BYTES }

export const noEvents = (): EncodedEvents => ({ events: [], messages: [], stored: [], bytes: 0 })

/** The copies of an event that left values out, by sink. */
export type OmittedCopies = Partial<Record<SinkName, TaskEvent>>

/** An encoder that adds events to a batch of encoded events; `omitted` hears once of an event too large for a sink. */
export function createEncoder(omitted: (copies: OmittedCopies) => void) {
  return function add(batch: EncodedEvents, event: TaskEvent) {
    const { message, copy, bytes } = encodeEvent(event)
    const stored = bytes <= SURELY_FITS_MONGO_JSON_BYTES ? event : storedCopy(event)
    if (copy !== event || stored !== event) omitted({ ...(copy !== event && { pubsub: copy }), ...(stored !== event && { mongo: stored }) })
    batch.events.push(event)
    batch.messages.push(message)
    batch.stored.push(stored)
    batch.bytes += bytes
  }
}

/** Encodes the events into a batch of their own. */
export function encodeAll(add: ReturnType<typeof createEncoder>, events: TaskEvent[]): EncodedEvents {
  const batch = noEvents()
  for (const event of events) add(batch, event)
  return batch
}
