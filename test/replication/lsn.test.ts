import { describe, expect, test } from 'bun:test'
import { formatLsn, lsnToHex16, parseLsn } from '../../src/replication/lsn.ts'

describe('LSN', () => {
  test('parses and formats the X/Y text form both ways', () => {
    expect(parseLsn('0/16B3748')).toBe(0x16b3748n)
    expect(parseLsn('1/0')).toBe(1n << 32n)
    expect(formatLsn(0x116b3748n)).toBe('0/116B3748')
    expect(formatLsn(parseLsn('FFFFFFFF/FFFFFFFF'))).toBe('FFFFFFFF/FFFFFFFF')
  })

  test('renders 16 upper-case hex digits that sort as the LSNs do', () => {
    expect(lsnToHex16(0x16b3748n)).toBe('00000000016B3748')
    const lsns = [parseLsn('1/0'), parseLsn('0/FFFFFFFF'), parseLsn('0/A')]
    expect(lsns.map(lsnToHex16).sort()).toEqual([...lsns].sort((a, b) => (a < b ? -1 : 1)).map(lsnToHex16))
  })

  test('refuses malformed text', () => {
    for (const text of ['', '0', '/1', '1/', 'x/1', '0/1/2']) expect(() => parseLsn(text)).toThrow('invalid LSN')
  })
})
