// The Snapshot, GET /v1/api/ws/Snapshot (contract section 5): the current workspaces and tasks, without
// tombstones, as one JSON document or as NDJSON (a header line, then one task per line). Guarantees:
// - the body is streamed from MongoDB cursors in pieces of bounded size, whatever the number of tasks;
// - `lastEventId` is the checkpoint read before the scan, and each task carries its own `lastEventId`:
//   applying the Stream from the header's `lastEventId`, skipping an event not newer than the task's
//   `lastEventId`, converges exactly to the tables (rows the scan saw later than the checkpoint say so);
// - a client that goes away closes the cursors at once.

import type { FindCursor } from 'mongodb'
import type { ApiStore } from './store.ts'

export const NDJSON = 'application/x-ndjson'
export const ZERO_EVENT_ID = '0000000000000000-00000000'
// Bytes gathered before a piece is written: few enough writes for speed, little enough memory per request.
const PIECE_BYTES = 64 * 1024

type Header = { lsn: string | null; lastEventId: string; takenAt: string }

/**
 * `failed` hears of a read that fails mid-body: the client sees the body cut short, the log says why. Throws
 * StoreUnavailable when MongoDB does not answer the first read (the client is told 503).
 */
export async function snapshotResponse(store: ApiStore, workspace: string | undefined, format: 'json' | 'ndjson', failed: (error: Error) => void): Promise<Response> {
  const point = await store.firstDurablePoint()
  // Before the first checkpoint the Stream must be read from the start: the smallest id says so.
  const header: Header = { lsn: point?.lsn ?? null, lastEventId: point?.lastEventId ?? ZERO_EVENT_ID, takenAt: new Date().toISOString() }
  const opened: FindCursor[] = []
  const rows = (name: 'tasks' | 'workspaces') => {
    const cursor = store.rows(name, workspace)
    opened.push(cursor)
    return cursor
  }
  const pieces = format === 'ndjson' ? ndjsonPieces(header, rows) : jsonPieces(header, rows)
  const close = () => {
    for (const cursor of opened) cursor.close().catch(() => {})
  }
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await pieces.next()
        if (done) {
          controller.close()
          close()
        } else controller.enqueue(Buffer.from(value))
      } catch (error) {
        close()
        failed(error as Error)
        controller.error(error)
      }
    },
    cancel: close,
  })
  return new Response(body, { headers: { 'content-type': format === 'ndjson' ? `${NDJSON}; charset=utf-8` : 'application/json; charset=utf-8' } })
}

type Rows = (name: 'tasks' | 'workspaces') => FindCursor

async function* jsonPieces(header: Header, rows: Rows): AsyncGenerator<string> {
  const opening = JSON.stringify(header).slice(0, -1)
  yield* joined(`${opening},"workspaces":[`, rows('workspaces'), ',', ']')
  yield* joined(',"tasks":[', rows('tasks'), ',', ']}')
}

/** The header line carries the workspaces (few), then each task is a line of its own. */
async function* ndjsonPieces(header: Header, rows: Rows): AsyncGenerator<string> {
  const opening = JSON.stringify(header).slice(0, -1)
  yield* joined(`${opening},"workspaces":[`, rows('workspaces'), ',', ']}\n')
  yield* joined('', rows('tasks'), '\n', '', '\n')
}

/** `before`, the documents as JSON separated by `separator` (and ended by `terminator`), `after`: in pieces. */
async function* joined(before: string, cursor: FindCursor, separator: string, after: string, terminator = ''): AsyncGenerator<string> {
  let piece = before
  let first = true
  for await (const document of cursor) {
    piece += (first ? '' : separator) + JSON.stringify(document)
    first = false
    if (piece.length >= PIECE_BYTES) {
      yield piece
      piece = ''
    }
  }
  yield piece + (first ? '' : terminator) + after
}
