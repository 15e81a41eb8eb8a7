// The decoded messages handed out and not yet read by the consumer, with their sequence numbers.
// Guarantees: messages are read in the order handed out, each once; sequence numbers are consecutive across reads
// (message i of a delivery has `firstSeq + i`), as `progress.track` gave them.

import type { DecodedMessage } from '../decode/types.ts'
import type { Lsn } from './lsn.ts'
import type { Progress } from './progress.ts'

/** A run of messages; message i has sequence number `firstSeq + i`, which `acknowledge` takes. */
export type Delivery = { firstSeq: number; messages: DecodedMessage[] }

export type Deliveries = ReturnType<typeof createDeliveries>

export function createDeliveries(progress: Progress) {
  let queue: DecodedMessage[] = []
  let queueFirstSeq = 1
  let wake: (() => void) | null = null

  return {
    /** Hands a message out; `confirmable` is the LSN its acknowledgement confirms, if any. */
    hand(message: DecodedMessage, bytes: number, confirmable: Lsn | null) {
      const seq = progress.track(bytes, confirmable)
      if (queue.length === 0) queueFirstSeq = seq
      queue.push(message)
      wake?.()
    },

    /** The messages handed out since the last read; waits for one, unless `over` says none will come ([] then). */
    async read(over: () => boolean): Promise<Delivery> {
      while (queue.length === 0) {
        if (over()) return { firstSeq: queueFirstSeq, messages: [] }
        await new Promise<void>((resolve) => (wake = resolve))
        wake = null
      }
      const delivery = { firstSeq: queueFirstSeq, messages: queue }
      queueFirstSeq += queue.length
      queue = []
      return delivery
    },

    /** Something `over` looks at changed: a waiting read looks again. */
    wake() {
      wake?.()
    },
  }
}
