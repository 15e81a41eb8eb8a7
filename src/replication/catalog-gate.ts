// The catalog gate of one session: XLogData in, decoded messages out, in order.
// Guarantees: an UPDATE whose columns disagree with the catalog reading at hand is decoded only with a reading taken
// after its transaction committed (tables.ts says why that one is exact for it); while that reading is under way,
// what follows is held, in order, and counted in `waiting()`. Readings come at most one per
// MIN_READING_INTERVAL_MS, and none outlives the gate: once closed, a reading that answers late is dropped (the next
// session receives those messages again).

import { decodeWal2json } from '../decode/wal2json.ts'
import type { DecodedMessage, ExistedAtChange } from '../decode/types.ts'
import type { XLogData } from './messages.ts'
import type { Waiting } from './progress.ts'
import { sleep } from '../retry.ts'
import type { CatalogReading } from './tables.ts'

// Catalog readings at most this often. One reading covers every transaction committed before it, so under a
// steady stream of updates that leave a large value alone the readings stay at 20 a second whatever the rate
// (a query each costs both ends some 0.15 ms of CPU: one per update would cost more than decoding it), and such
// an update waits at most this long for its reading while the socket is still read.
export const MIN_READING_INTERVAL_MS = 50

export type CatalogGateOptions = {
  /** The session's first reading. */
  reading: CatalogReading
  readCatalog(): Promise<CatalogReading>
  /** Ends a pacing wait at once (the process stops). */
  signal: AbortSignal
  /** A message decoded, in order. */
  decoded(message: DecodedMessage, bytes: number): void
  /** Something more is held: `waiting()` grew. */
  held(): void
  /** What was held went through: `waiting()` shrank. */
  released(): void
  fail(error: unknown): void
}

export type CatalogGate = ReturnType<typeof createCatalogGate>

export function createCatalogGate(options: CatalogGateOptions) {
  let catalog = options.reading
  // The reading `catalog` replaced: one taken before a transaction it does not cover committed dates columns for it.
  let earlier: CatalogReading | null = null
  // The transaction being received, and how its updates are decoded: with `catalog` read before it committed, or,
  // read after, with what says whether a column existed when the update was made.
  let transactionXid = 0
  let columnsRead: 'before' | ExistedAtChange = 'before'
  // While the catalog is read again: the messages received meanwhile, in order, and the transaction the first of
  // them belongs to.
  let held: XLogData[] | null = null
  let heldBytes = 0
  let heldXid = 0
  let lastReadingAt = -Infinity
  let closed = false

  function receive(xlog: XLogData) {
    if (held) {
      held.push(xlog)
      heldBytes += xlog.data.length
      options.held()
      return
    }
    const message = decodeWal2json(xlog.data, catalog.columns, xlog.dataStart, columnsRead)
    if (message.kind === 'begin') {
      transactionXid = message.xid
      columnsRead = readFor(message.xid)
    } else if (message.kind === 'update' && message.columnsDiffer) {
      held = [xlog]
      heldBytes = xlog.data.length
      heldXid = transactionXid
      options.held()
      readAgain().catch(options.fail)
      return
    }
    options.decoded(message, xlog.data.length)
  }

  /**
   * Reads the catalog again and goes on from the first message held. It waits a turn at least (the messages of the
   * socket chunk at hand are held for this reading rather than ask for one more), and until MIN_READING_INTERVAL_MS
   * after the last reading. A transaction whose commit the server had written but not yet made visible (a matter
   * of microseconds) is not covered yet: its update is held again and read for again.
   */
  async function readAgain() {
    const wait = lastReadingAt + MIN_READING_INTERVAL_MS - performance.now()
    await (wait > 0 ? sleep(wait, options.signal) : new Promise((resolve) => setImmediate(resolve)))
    lastReadingAt = performance.now()
    const reading = await options.readCatalog()
    if (closed) return
    earlier = catalog
    catalog = reading
    const replay = held!
    held = null
    heldBytes = 0
    transactionXid = heldXid
    columnsRead = readFor(heldXid)
    for (const xlog of replay) receive(xlog)
    options.released()
  }

  /** How the updates of transaction `xid` are decoded with the reading at hand. */
  function readFor(xid: number): 'before' | ExistedAtChange {
    if (!catalog.covers(xid)) return 'before'
    const before = earlier
    if (!before || before.covers(xid)) return catalog.existedAt
    // Read before the transaction committed: a column whose catalog row it saw was there when the update was made.
    return (column, maxPosition) => catalog.existedAt(column, maxPosition) || (column.xmin !== undefined && before.covers(column.xmin))
  }

  return {
    receive,
    /** Received and held for a reading: it counts against the pending limits. */
    waiting: (): Waiting => ({ changes: held?.length ?? 0, bytes: heldBytes }),
    get holding() {
      return held !== null
    },
    /** The session is over: a reading under way is dropped when it answers. */
    close() {
      closed = true
    },
  }
}
