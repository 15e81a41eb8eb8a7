// Log sequence numbers: PostgreSQL's 64-bit WAL positions, written "X/Y" (two hex halves).
// Kept as bigint so comparisons are exact across the whole range.

export type Lsn = bigint

export const ZERO_LSN: Lsn = 0n

const HALF = 32n
const LOW_MASK = 0xffffffffn
const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/
const HALF_RANGE = 2 ** 32
// Below this high half the whole LSN fits a double exactly: one BigInt conversion instead of three.
const EXACT_HIGH_LIMIT = 2 ** 21

export function parseLsn(text: string): Lsn {
  const match = LSN_TEXT.exec(text)
  if (!match) throw new Error(`invalid LSN "${text}"`)
  const high = parseInt(match[1]!, 16)
  const low = parseInt(match[2]!, 16)
  return high < EXACT_HIGH_LIMIT ? BigInt(high * HALF_RANGE + low) : (BigInt(high) << HALF) | BigInt(low)
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> HALF).toString(16).toUpperCase()}/${(lsn & LOW_MASK).toString(16).toUpperCase()}`
}

/** The 16 upper-case hex digits that event ids start with; sorting them as strings sorts by LSN. */
export function lsnToHex16(lsn: Lsn): string {
  return lsn.toString(16).toUpperCase().padStart(16, '0')
}

export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b
}
