// The slot a session streams from: found and accepted, or dropped and created again, or created, its initial
// load run while the exported snapshot is valid. Guarantees: a slot of another plugin or database is refused; a
// slot that no longer exists after a stream from it is a failure for good, never silently created again (changes
// would be lost); its confirmed LSN is where streaming may start.

import type postgres from 'postgres'
import type { Logger } from '../log.ts'
import { type Lsn, ZERO_LSN, formatLsn } from './lsn.ts'
import { type CreatedSlot, type SlotInfo, SlotError, checkSlot, createSlot, dropSlot, identifySystem, readSlot } from './slot.ts'

export type SlotHooks = {
  /**
   * Asked, before the first stream, of a slot that exists and no other process holds: false drops it and
   * creates it again (its initial load never finished, so streaming from it would miss the existing rows).
   */
  acceptSlot?(slot: SlotInfo): Promise<boolean>
  /** Called before the slot is created (the record that a load is under way is written here). */
  beforeCreateSlot?(): Promise<void>
  /**
   * Called when the slot had to be created, before streaming starts, while its exported snapshot is valid
   * (the initial load runs here). The stream starts after it returns. Work that `stopRequested` cuts short
   * ends by throwing.
   */
  onSlotCreated?(slot: CreatedSlot, stopRequested: () => boolean): Promise<void>
}

export type OpenSlotOptions = SlotHooks & {
  /** The replication connection that will stream: the slot is created on it, so its snapshot stays valid. */
  replication: postgres.Sql
  sql: postgres.Sql
  slot: string
  /** A stream from this slot ran already: it must exist, and is accepted as it is. */
  streamedOnce: boolean
  /** What the consumer has confirmed. */
  flushLsn(): Lsn
  stopRequested(): boolean
  log: Logger
}

/** Where the slot is confirmed (streaming starts there, or at what the consumer confirmed if later), and where it was
 * created if it had to be. */
export type OpenedSlot = { slotLsn: Lsn; createdAt: Lsn | null }

export async function openSlot(options: OpenSlotOptions): Promise<OpenedSlot> {
  const { replication, sql, slot, log } = options
  const identity = await identifySystem(replication)
  let existing = await readSlot(sql, slot)
  if (existing) checkSlot(existing, identity.database)
  if (existing && !existing.active && !options.streamedOnce && options.acceptSlot && !(await options.acceptSlot(existing))) {
    log.warn(`replication slot ${slot} has no finished initial load recorded; dropping it to create it again and load`)
    await dropSlot(sql, slot)
    existing = null
  }
  if (existing) return { slotLsn: existing.confirmedFlushLsn ?? ZERO_LSN, createdAt: null }
  if (options.streamedOnce)
    throw new SlotError(`replication slot "${slot}" was dropped while in use: changes since ${formatLsn(options.flushLsn())} are lost; restart to create it again and reload`)
  await options.beforeCreateSlot?.()
  const created = await createSlot(replication, slot)
  log.info(`created replication slot ${slot} at ${formatLsn(created.consistentPoint)}`)
  await options.onSlotCreated?.(created, options.stopRequested)
  return { slotLsn: created.consistentPoint, createdAt: created.consistentPoint }
}
