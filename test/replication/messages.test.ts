import { describe, expect, test } from 'bun:test'
import { parsePrimaryKeepalive, parseXLogData, standbyStatusUpdate } from '../../src/replication/messages.ts'

describe('replication protocol messages', () => {
  test('XLogData: positions and the payload after the 25-byte header', () => {
    const message = Buffer.alloc(25 + 3)
    message[0] = 'w'.charCodeAt(0)
    message.writeBigUInt64BE(0x100n, 1)
    message.writeBigUInt64BE(0x200n, 9)
    message.write('abc', 25)
    const parsed = parseXLogData(message)
    expect(parsed.dataStart).toBe(0x100n)
    expect(parsed.walEnd).toBe(0x200n)
    expect(parsed.data.toString()).toBe('abc')
  })

  test('primary keepalive: WAL end and whether a reply is requested', () => {
    const message = Buffer.alloc(18)
    message[0] = 'k'.charCodeAt(0)
    message.writeBigUInt64BE(0xabcdefn, 1)
    message[17] = 1
    expect(parsePrimaryKeepalive(message)).toEqual({ walEnd: 0xabcdefn, replyRequested: true })
    message[17] = 0
    expect(parsePrimaryKeepalive(message).replyRequested).toBe(false)
    expect(() => parsePrimaryKeepalive(message.subarray(0, 10))).toThrow('short primary keepalive')
  })

  test('standby status update: write, flush, apply and a send time in microseconds since 2000-01-01', () => {
    const now = Date.UTC(2026, 10, 28, 12)
    const message = standbyStatusUpdate({ write: 30n, flush: 20n, apply: 10n }, now)
    expect(message.length).toBe(34)
    expect(String.fromCharCode(message[0]!)).toBe('r')
    expect(message.readBigUInt64BE(1)).toBe(30n)
    expect(message.readBigUInt64BE(9)).toBe(20n)
    expect(message.readBigUInt64BE(17)).toBe(10n)
    expect(message.readBigInt64BE(25)).toBe(BigInt(now - Date.UTC(2000, 0, 1)) * 1000n)
    expect(message[33]).toBe(0)
  })
})
