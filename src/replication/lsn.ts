// Log sequence numbers: PostgreSQL's 64-bit WAL positions, written "X/Y" (two hex halves).
// Kept as bigint so comparisons are exact across the whole range.

export type Lsn = bigint

export const ZERO_LSN: Lsn = 0n

const HALF = 32n
const LOW_MASK = 0xffffffffn

export function parseLsn(text: string): Lsn {
  const slash = text.indexOf('/')
  if (slash < 1 || slash === text.length - 1 || !/^[0-9A-Fa-f]+\/[0-9A-Fa-f]+$/.test(text))
    throw new Error(`invalid LSN "${text}"`)
  return (BigInt('0x' + text.slice(0, slash)) << HALF) | BigInt('0x' + text.slice(slash + 1))
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
