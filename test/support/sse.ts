// A Server-Sent Events client for the tests: reads a stream over fetch, keeping every event (parsed) and
// the time of every comment line, until closed.

import { waitFor } from './ports.ts'

/** An event as received; `at` is performance.now() when its chunk arrived. */
export type SseEvent = { id: string; event: string; data: Record<string, any>; at: number }

export type SseClient = {
  status: number
  /** The body when the server refused the stream (not 200). */
  refusal: unknown
  events: SseEvent[]
  /** performance.now() of each comment line received. */
  comments: number[]
  /** Resolves once the server ends the stream (or it fails), with how it ended. */
  ended: Promise<'done' | 'error'>
  /** Waits until at least `count` events arrived. */
  waitForEvents(count: number, timeoutMs?: number): Promise<void>
  close(): void
}

export async function openStream(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const abort = new AbortController()
  const response = await fetch(url, { headers, signal: abort.signal })
  const events: SseEvent[] = []
  const comments: number[] = []
  let ended: Promise<'done' | 'error'> = Promise.resolve('done')
  let refusal: unknown = null
  if (response.status === 200) {
    ended = (async () => {
      const decoder = new TextDecoder()
      let buffered = ''
      try {
        for await (const chunk of response.body as ReadableStream<Uint8Array>) {
          buffered += decoder.decode(chunk, { stream: true })
          const at = performance.now()
          let end: number
          while ((end = buffered.indexOf('\n\n')) >= 0) {
            const block = buffered.slice(0, end)
            buffered = buffered.slice(end + 2)
            if (block.startsWith(':')) comments.push(at)
            else events.push(parseEvent(block, at))
          }
        }
        return 'done'
      } catch {
        return 'error'
      }
    })()
  } else refusal = await response.json()
  return {
    status: response.status,
    refusal,
    events,
    comments,
    ended,
    waitForEvents: (count, timeoutMs = 30_000) => waitFor(`${count} events (have ${events.length})`, () => events.length >= count, timeoutMs, 20),
    close: () => abort.abort(),
  }
}

function parseEvent(block: string, at: number): SseEvent {
  const fields: Record<string, string> = {}
  for (const line of block.split('\n')) {
    const colon = line.indexOf(': ')
    fields[line.slice(0, colon)] = line.slice(colon + 2)
  }
  return { id: fields.id!, event: fields.event!, data: JSON.parse(fields.data!), at }
}

export type Follower = {
  /** Every event received, over every stream, in the order received. */
  readonly events: SseEvent[]
  /** The instance (base URL) of each stream opened, in order. */
  served: string[]
  stop(): Promise<void>
}

/**
 * A reader of an HA pair, as the contract asks of one: whenever its stream ends it resumes with Last-Event-ID
 * (from `after` at first) at whichever instance answers /readyz 200.
 */
export function followStream(bases: string[], path: string, after: string): Follower {
  const received: SseEvent[] = []
  const served: string[] = []
  let current: SseClient | null = null
  let stopped = false
  const ready = async (base: string) => (await fetch(`${base}/readyz`).catch(() => null))?.status === 200
  const running = (async () => {
    while (!stopped) {
      const base = (await Promise.all(bases.map(async (base) => ((await ready(base)) ? base : null)))).find(Boolean)
      const client = base ? await openStream(base + path, { 'last-event-id': received.at(-1)?.id ?? after }).catch(() => null) : null
      if (client?.status !== 200) {
        await Bun.sleep(100)
        continue
      }
      current = client
      served.push(base!)
      await client.ended
      received.push(...client.events)
      current = null
    }
  })()
  return {
    get events() {
      return current ? [...received, ...current.events] : received
    },
    served,
    async stop() {
      stopped = true
      current?.close()
      await running
    },
  }
}
