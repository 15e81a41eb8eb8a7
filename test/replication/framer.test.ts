// The transaction framer alone: decoded messages in, what is handed out and what is confirmed out.

import { describe, expect, test } from 'bun:test'
import type { DecodedMessage } from '../../src/decode/types.ts'
import { createFramer } from '../../src/replication/framer.ts'
import type { Lsn } from '../../src/replication/lsn.ts'

const begin = (xid: number, commitLsn: Lsn): DecodedMessage => ({ kind: 'begin', xid, commitLsn, commitTime: 't' })
const commit = (xid: number, commitLsn: Lsn): DecodedMessage => ({ kind: 'commit', xid, commitLsn, commitTime: 't' })
const insert = (lsn: Lsn): DecodedMessage => ({ kind: 'insert', schema: 'public', table: 'tasks', lsn, row: { id: Number(lsn) } })
const message = (lsn: Lsn, transactional = false): DecodedMessage => ({ kind: 'message', lsn, transactional, prefix: 'p', content: 'c' })

/** A framer that records what it hands out (kind@confirmable) and what it confirms after pending. */
function framed(skipThrough: Lsn, messages: DecodedMessage[]) {
  const handed: string[] = []
  const confirmed: Lsn[] = []
  const framer = createFramer(skipThrough, {
    hand: (m, _bytes, confirmable) => handed.push(`${m.kind}${confirmable === null ? '' : `@${confirmable}`}`),
    confirmAfterPending: (lsn) => confirmed.push(lsn),
  })
  for (const m of messages) framer.frame(m, 1)
  return { handed, confirmed, skipThrough: framer.skipThrough }
}

describe('transaction framer', () => {
  test('hands a transaction out framed, its commit confirmable at the commit LSN', () => {
    const { handed, confirmed, skipThrough } = framed(0n, [begin(1, 100n), insert(90n), insert(95n), commit(1, 100n)])
    expect(handed).toEqual(['begin', 'insert', 'insert', 'commit@100'])
    expect(confirmed).toEqual([])
    expect(skipThrough).toBe(100n)
  })

  test('holds the begin back until the first change: an empty transaction is only confirmed after what is pending', () => {
    const { handed, confirmed, skipThrough } = framed(0n, [begin(1, 100n), commit(1, 100n), begin(2, 200n), insert(150n), commit(2, 200n)])
    expect(handed).toEqual(['begin', 'insert', 'commit@200'])
    expect(confirmed).toEqual([100n])
    expect(skipThrough).toBe(200n)
  })

  test('skips a transaction committed at or below skipThrough, and hands out the next', () => {
    const { handed, confirmed } = framed(100n, [begin(1, 100n), insert(90n), commit(1, 100n), begin(2, 101n), insert(100n), commit(2, 101n)])
    expect(handed).toEqual(['begin', 'insert', 'commit@101'])
    expect(confirmed).toEqual([])
  })

  test('a transaction handed out whole is skipped when a later session receives it again', () => {
    const first = framed(0n, [begin(1, 100n), insert(90n), commit(1, 100n), begin(2, 200n), insert(150n)])
    expect(first.skipThrough).toBe(100n)
    const again = framed(first.skipThrough, [begin(1, 100n), insert(90n), commit(1, 100n), begin(2, 200n), insert(150n), commit(2, 200n)])
    expect(again.handed).toEqual(['begin', 'insert', 'commit@200'])
  })

  test('a non-transactional message is handed out confirmable at its LSN, unless at or below skipThrough', () => {
    expect(framed(50n, [message(40n), message(60n)]).handed).toEqual(['message@60'])
  })

  test('a transactional message is a change of its transaction', () => {
    expect(framed(0n, [begin(1, 100n), message(90n, true), commit(1, 100n)]).handed).toEqual(['begin', 'message', 'commit@100'])
    expect(framed(100n, [begin(1, 100n), message(90n, true), commit(1, 100n)]).handed).toEqual([])
  })
})
