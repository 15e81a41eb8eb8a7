// Replication commands and the slot's life: IDENTIFY_SYSTEM, the slot's catalog row, CREATE_REPLICATION_SLOT.
// A slot is created with the wal2json plugin only; a slot of the same name with another plugin or in
// another database is refused, never reused or dropped.

import type postgres from 'postgres'
import { type Lsn, parseLsn } from './lsn.ts'

export const OUTPUT_PLUGIN = 'wal2json'

export type SystemIdentity = { systemId: string; timeline: number; walPosition: Lsn; database: string }

export type SlotInfo = {
  name: string
  plugin: string
  database: string
  active: boolean
  activePid: number | null
  confirmedFlushLsn: Lsn | null
  restartLsn: Lsn | null
}

/** A freshly created slot. `snapshotName` is usable only until the creating connection runs another command. */
export type CreatedSlot = { name: string; consistentPoint: Lsn; snapshotName: string }

export class SlotError extends Error {
  override name = 'SlotError'
}

/** Another process has the slot in hand without streaming from it (it creates or loads it): stand by and look again. */
export class SlotBusy extends Error {
  override name = 'SlotBusy'
}

// CREATE_REPLICATION_SLOT's answer when the slot exists: another process created it since we read the slot.
const DUPLICATE_OBJECT = '42710'

export async function identifySystem(replication: postgres.Sql): Promise<SystemIdentity> {
  const [row] = await replication.unsafe('IDENTIFY_SYSTEM')
  if (!row) throw new Error('IDENTIFY_SYSTEM returned no row')
  return {
    systemId: String(row.systemid),
    timeline: Number(row.timeline),
    walPosition: parseLsn(String(row.xlogpos)),
    database: String(row.dbname),
  }
}

export async function readSlot(sql: postgres.Sql, name: string): Promise<SlotInfo | null> {
  const [row] = await sql`
    select slot_name, plugin, database, active, active_pid, confirmed_flush_lsn::text as confirmed_flush_lsn,
           restart_lsn::text as restart_lsn
    from pg_replication_slots where slot_name = ${name}`
  if (!row) return null
  return {
    name: row.slot_name,
    plugin: row.plugin ?? '(physical)',
    database: row.database ?? '',
    active: row.active,
    activePid: row.active_pid,
    confirmedFlushLsn: row.confirmed_flush_lsn ? parseLsn(row.confirmed_flush_lsn) : null,
    restartLsn: row.restart_lsn ? parseLsn(row.restart_lsn) : null,
  }
}

export function checkSlot(slot: SlotInfo, database: string) {
  if (slot.plugin !== OUTPUT_PLUGIN)
    throw new SlotError(`replication slot "${slot.name}" exists with plugin ${slot.plugin}, not ${OUTPUT_PLUGIN}: choose another --slot or drop it`)
  if (slot.database !== database)
    throw new SlotError(`replication slot "${slot.name}" belongs to database "${slot.database}", not "${database}": choose another --slot`)
}

/** Must run on the replication connection that will stream, before any other command, to keep the snapshot. */
export async function createSlot(replication: postgres.Sql, name: string): Promise<CreatedSlot> {
  // The pre-15 spelling of the snapshot option, so PostgreSQL 12 to 14 accept it as well.
  const [row] = await replication.unsafe(`CREATE_REPLICATION_SLOT ${quoteIdentifier(name)} LOGICAL ${OUTPUT_PLUGIN} EXPORT_SNAPSHOT`).catch((error) => {
    throw (error as { code?: string }).code === DUPLICATE_OBJECT ? new SlotBusy(`replication slot ${name} was created by another process meanwhile`) : error
  })
  if (!row) throw new Error('CREATE_REPLICATION_SLOT returned no row')
  return { name, consistentPoint: parseLsn(String(row.consistent_point)), snapshotName: String(row.snapshot_name) }
}

export async function dropSlot(sql: postgres.Sql, name: string) {
  await sql`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = ${name}`
}

export function quoteIdentifier(name: string): string {
  return '"' + name.replaceAll('"', '""') + '"'
}

export function quoteLiteral(value: string): string {
  return "'" + value.replaceAll("'", "''") + "'"
}
