// The live change stream, GET /v1/api/ws/Stream (contract section 5): Server-Sent Events of what the
// pipeline made durable and published, resumed from the history in `task_events`. Guarantees:
// - a client gets every event after its resume point that passes its filter, once, in id (commit) order.
//   It subscribes to live events first, then reads the history up to the last event known durable (the
//   greater of the last batch announced and the checkpoint), and from then on sends only live events with
//   a greater id than the last it sent: nothing falls between history and live, nothing is sent twice;
// - an event goes out only once its batch is durable and published (history stops at that bound too);
// - when this process streams again after a reconnection of its own (`reread`), every client reads the
//   history from its last event up to the new bound before it takes live events again, so that what
//   another process published meanwhile is not skipped; when the process loses the slot (`endAll`), every
//   stream ends, and its clients resume by Last-Event-ID where the slot is streamed;
// - a comment line goes out at least every KEEP_ALIVE_MS, while history is read too;
// - memory per client is bounded: history is read on demand, one chunk ahead of what the client took;
//   while catching up, live events past the buffer are dropped and read from the history by a further
//   pass; once live, a client whose buffer overflows (it stopped reading) is disconnected with a log line;
//   in every phase, a client that has taken nothing for the idle-read timeout is disconnected too;
// - a client that goes away releases its place, timers and cursor at once (the body is a ReadableStream
//   whose `cancel` runs on disconnect, and the request's abort signal says the same).

import type { FindCursor } from 'mongodb'
import type { EventType, TaskEvent } from '../events/events.ts'
import { eventJson } from '../events/json.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from './metrics.ts'
import type { ApiStore, DurablePoint, EventFilter } from './store.ts'

export const EVENT_TYPES: readonly EventType[] = [
  'task.created', 'task.updated', 'task.deleted', 'task.snapshot',
  'workspace.created', 'workspace.updated', 'workspace.deleted', 'workspace.snapshot',
  'tasks.truncated', 'workspaces.truncated',
]
/** Truncates concern every workspace: they pass the `workspace` filter. */
export const TRUNCATE_TYPES: ReadonlySet<string> = new Set<EventType>(['tasks.truncated', 'workspaces.truncated'])

// The contract asks for a comment at least every 15 s; 10 s leaves room for a write that waits on a busy loop.
export const KEEP_ALIVE_MS = 10_000
// What a client may have waiting, in bytes of SSE text: about four full pipeline batches (1,000 events) of
// typical 1 KB events. A client that reads drains its buffer between batches, so only one that stopped
// reading gets there. Frames are encoded once and shared by every client, so this bounds the memory a slow
// client can pin.
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024
// A client fed history on demand never fills its buffer, however long it stops reading: one that has taken
// nothing for this long is disconnected (its open cursor and page of events are released). A minute is
// far beyond any pause of a reader that is alive, and well within what a proxy holds an idle connection.
export const IDLE_READ_TIMEOUT_MS = 60_000
// History events sent per chunk: one cursor page's worth, so a catch-up writes in large pieces.
const HISTORY_CHUNK_EVENTS = 500

const encoder = new TextEncoder()
const OPENING = encoder.encode(': stream open\n\n')
const KEEP_ALIVE = encoder.encode(': keep-alive\n\n')
const FRAME_END = encoder.encode('\n\n')

export type StreamRequest = {
  /** Resume after this event id (Last-Event-ID or `since`); null for live events only. */
  after: string | null
  filter: EventFilter
}

/** An event as encoded SSE text; `durableAt` (performance.now()) when it came live, for the delay metric. */
type Frame = { id: string; bytes: Uint8Array; durableAt?: number }

type Client = {
  accepts(event: TaskEvent): boolean
  offer(frame: Frame): void
  /** Read the history again from the last event sent before taking live events. */
  reread(): void
  /** End the response normally: the client reconnects with Last-Event-ID. */
  end(): void
}

export type LiveStreamOptions = {
  store: ApiStore
  metrics: Metrics
  log: Logger
  maxClients: number
  maxBufferedBytes?: number
  keepAliveMs?: number
  idleReadTimeoutMs?: number
}

export type LiveStream = ReturnType<typeof createLiveStream>

export function createLiveStream(options: LiveStreamOptions) {
  const { store, metrics, log } = options
  const maxBuffered = options.maxBufferedBytes ?? MAX_BUFFERED_BYTES
  const keepAliveMs = options.keepAliveMs ?? KEEP_ALIVE_MS
  const idleReadTimeoutMs = options.idleReadTimeoutMs ?? IDLE_READ_TIMEOUT_MS
  const clients = new Set<Client>()
  // Greatest id announced durable since the process started ('' before the first batch).
  let durableThrough = ''
  let clientsOpened = 0

  /** The bound of a history pass: every event at or below it is durable, published and stored. */
  function historyBound(point: DurablePoint | null): string {
    const checkpoint = point?.lastEventId ?? ''
    return checkpoint > durableThrough ? checkpoint : durableThrough
  }

  /** The response, or null past the client limit; throws StoreUnavailable when MongoDB does not answer. */
  async function open(request: StreamRequest, signal: AbortSignal): Promise<Response | null> {
    if (clients.size >= options.maxClients) return null
    const number = ++clientsOpened
    const filter = request.filter
    const types = filter.types ? new Set<string>(filter.types) : null

    let queue: Frame[] = []
    let queuedBytes = 0
    let catchingUp = request.after !== null
    // Live events were dropped during this history pass: another pass reads them.
    let overflowed = false
    // Set once the checkpoint is read below: a live-only client starts at the durable bound, so that a
    // reread after a reconnection reads only what came since it connected.
    let lastSent = request.after ?? ''
    let cursor: FindCursor<TaskEvent> | null = null
    // The checkpoint read when the client connected: the first pass's bound, read once.
    let firstPoint: DurablePoint | null | undefined
    // A history chunk under way: a keep-alive may go out while it is read.
    let reading: Promise<Uint8Array | null> | null = null
    let wake: (() => void) | null = null
    let idleTimer: ReturnType<typeof setTimeout> | undefined
    let closed = false
    let controller: ReadableStreamDefaultController<Uint8Array>

    /** Ends the response with an error (the connection is cut), after releasing everything. */
    function cut(why: string) {
      release()
      // A stream the runtime already closed has nothing left to end.
      try {
        controller.error(new Error(why))
      } catch {}
    }

    const client: Client = {
      accepts: (event) =>
        (!filter.workspace || event.workspaceId === filter.workspace || TRUNCATE_TYPES.has(event.type)) && (!types || types.has(event.type)),
      offer(frame) {
        // An empty buffer takes any event, so that one larger than the limit cannot shut a reader out.
        if (!queue.length || queuedBytes + frame.bytes.length <= maxBuffered) {
          queue.push(frame)
          queuedBytes += frame.bytes.length
          wake?.()
        } else if (catchingUp) {
          queue = []
          queuedBytes = 0
          overflowed = true
        } else {
          log.warn(`stream client ${number} disconnected: ${queue.length} events (${queuedBytes} bytes) waiting, it does not read; it resumes with Last-Event-ID`, {
            client: number,
            lastEventId: lastSent,
          })
          metrics.streamDropped.inc()
          cut('stream client too slow')
        }
      },
      reread() {
        if (catchingUp || closed) return
        catchingUp = true
        wake?.()
      },
      end() {
        release()
        try {
          controller.close()
        } catch {}
      },
    }

    function release() {
      if (closed) return
      closed = true
      clients.delete(client)
      metrics.streamClients.dec()
      clearTimeout(idleTimer)
      queue = []
      queuedBytes = 0
      cursor?.close().catch(() => {})
      cursor = null
      wake?.()
    }

    /** Up to a chunk of history; null when a pass ended (then the next call starts another, or goes live). */
    async function historyChunk(): Promise<Uint8Array | null> {
      if (!cursor) {
        overflowed = false
        const point = firstPoint !== undefined ? firstPoint : await store.durablePoint()
        firstPoint = undefined
        const through = historyBound(point)
        if (closed) return null
        if (through <= lastSent) {
          catchingUp = false
          return null
        }
        cursor = store.history(lastSent, through, filter)
      }
      const frames: Uint8Array[] = []
      for (let sent = 0; sent < HISTORY_CHUNK_EVENTS; sent++) {
        const event = await cursor.next()
        if (closed) return null
        if (!event) {
          await cursor.close()
          cursor = null
          if (!overflowed) catchingUp = false
          break
        }
        frames.push(frameOf(event).bytes)
        lastSent = event.id
      }
      metrics.streamEvents.inc(frames.length)
      return frames.length ? Buffer.concat(frames) : null
    }

    /** Resolves true when an event arrives, false after `ms` without one. */
    function woken(ms: number): Promise<boolean> {
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          wake = null
          resolve(false)
        }, ms)
        wake = () => {
          clearTimeout(timer)
          wake = null
          resolve(true)
        }
      })
    }

    /** The history chunk under way, or the keep-alive if it takes longer than the keep-alive interval. */
    async function historyOrKeepAlive(): Promise<Uint8Array | null | typeof KEEP_ALIVE> {
      if (!reading) {
        reading = historyChunk()
        // A chunk abandoned by a client that went away fails with its cursor: no one waits for it then.
        reading.catch(() => {})
      }
      let timer: ReturnType<typeof setTimeout> | undefined
      const keepAlive = new Promise<typeof KEEP_ALIVE>((resolve) => (timer = setTimeout(() => resolve(KEEP_ALIVE), keepAliveMs)))
      try {
        const chunk = await Promise.race([reading, keepAlive])
        if (chunk !== KEEP_ALIVE) reading = null
        return chunk
      } finally {
        clearTimeout(timer)
      }
    }

    /** The live events waiting, as one piece; null when none are newer than the last sent. */
    function liveChunk(): Uint8Array | null {
      const frames: Uint8Array[] = []
      let observed: number | undefined
      const now = performance.now()
      for (const frame of queue)
        if (frame.id > lastSent) {
          frames.push(frame.bytes)
          lastSent = frame.id
          // Once per batch: its frames share the moment they came.
          if (frame.durableAt !== undefined && frame.durableAt !== observed) metrics.streamDelay.observe((now - (observed = frame.durableAt)) / 1000)
        }
      queue = []
      queuedBytes = 0
      if (!frames.length) return null
      metrics.streamEvents.inc(frames.length)
      return frames.length === 1 ? frames[0]! : Buffer.concat(frames)
    }

    /** The next bytes to send; null once the client is gone. */
    async function next(): Promise<Uint8Array | null> {
      while (!closed) {
        if (catchingUp || reading) {
          const chunk = await historyOrKeepAlive()
          if (chunk) return chunk
          continue
        }
        const chunk = liveChunk()
        if (chunk) return chunk
        if (!(await woken(keepAliveMs)) && !closed) return KEEP_ALIVE
      }
      return null
    }

    /** Sends a piece and starts the idle-read clock: the runtime asks for the next piece once the client took it. */
    function send(streamController: ReadableStreamDefaultController<Uint8Array>, chunk: Uint8Array) {
      streamController.enqueue(chunk)
      clearTimeout(idleTimer)
      idleTimer = setTimeout(() => {
        log.warn(`stream client ${number} disconnected: it has read nothing for ${idleReadTimeoutMs / 1000} s; it resumes with Last-Event-ID`, { client: number, lastEventId: lastSent })
        metrics.streamDropped.inc()
        cut('stream client not reading')
      }, idleReadTimeoutMs)
    }

    clients.add(client)
    metrics.streamClients.inc()
    signal.addEventListener('abort', release, { once: true })
    // Subscribed first, then the checkpoint read: a batch made durable in between is live or below the bound.
    let point: DurablePoint | null
    try {
      point = await store.firstDurablePoint()
    } catch (error) {
      release()
      throw error
    }
    if (catchingUp) firstPoint = point
    else lastSent = historyBound(point)

    const body = new ReadableStream<Uint8Array>(
      {
        start(streamController) {
          controller = streamController
          send(streamController, OPENING)
        },
        async pull(streamController) {
          clearTimeout(idleTimer)
          try {
            const chunk = await next()
            if (chunk === null) return
            send(streamController, chunk)
          } catch (error) {
            if (closed) return
            log.warn(`stream client ${number} ended: ${(error as Error).message}`, { client: number })
            cut((error as Error).message)
          }
        },
        cancel: release,
      },
      // One chunk ahead at most: the rest waits in the client's bounded buffer, where overflow is seen.
      { highWaterMark: 1 },
    )
    return new Response(body, {
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        // nginx buffers responses unless told not to: an event would wait for the buffer to fill.
        'x-accel-buffering': 'no',
      },
    })
  }

  return {
    open,

    /** A batch is durable and published (the pipeline's onDurable): to every client whose filter takes it. */
    durable(batch: TaskEvent[]) {
      if (!batch.length) return
      durableThrough = batch.at(-1)!.id
      if (!clients.size) return
      const durableAt = performance.now()
      for (const event of batch) {
        let frame: Frame | null = null
        for (const client of clients) if (client.accepts(event)) client.offer((frame ??= { ...frameOf(event), durableAt }))
      }
    },

    /** This process streams again after a reconnection: another may have published meanwhile. */
    reread() {
      for (const client of clients) client.reread()
    },

    /** This process lost the slot to another: every stream ends, and its clients resume where the slot is streamed. */
    endAll(why: string) {
      if (!clients.size) return
      log.info(`ending ${clients.size} stream clients: ${why}; they resume with Last-Event-ID`)
      for (const client of [...clients]) client.end()
    },

    get clients() {
      return clients.size
    },
  }
}

/** The event's SSE text; its JSON is the one Pub/Sub's message carries when the event was published as it is. */
function frameOf(event: TaskEvent): Frame {
  return { id: event.id, bytes: Buffer.concat([encoder.encode(`id: ${event.id}\nevent: ${event.type}\ndata: `), eventJson(event), FRAME_END]) }
}
