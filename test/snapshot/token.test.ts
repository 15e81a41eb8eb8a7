// The token source against a token endpoint that counts its requests: tokens reused until shortly before
// they expire (by expires_in, else the JWT's exp, even when a clock ahead of the issuer's has passed it), one request for callers asking at once, renewal after a
// 401 only when nobody renewed already, and an OAuth2 refusal in one line that never shows the secret.

import { afterAll, afterEach, describe, expect, test } from 'bun:test'
import { SignJWT } from 'jose'
import { secret } from '../../src/config.ts'
import { createTokenSource, TokenError } from '../../src/snapshot/token.ts'

const SECRET = 'tok-en-secret-9'
type Answer = { status: number; body: Record<string, unknown> }

let issued = 0
let authorizations: string[] = []
let answer: () => Promise<Answer> = async () => ({ status: 200, body: { access_token: `token-${++issued}`, token_type: 'Bearer', expires_in: 3600 } })
const endpoint = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(request) {
    authorizations.push(request.headers.get('authorization') ?? '')
    expect(await request.text()).toBe('grant_type=client_credentials')
    const { status, body } = await answer()
    return Response.json(body, { status })
  },
})
afterAll(() => endpoint.stop(true))
const defaultAnswer = answer
afterEach(() => {
  answer = defaultAnswer
  authorizations = []
})

function source(now?: () => number) {
  return createTokenSource({ tokenUrl: `http://127.0.0.1:${endpoint.port}/token`, clientId: 'job client', clientSecret: secret(SECRET), now })
}

describe('token source', () => {
  test('authenticates with client_secret_basic', async () => {
    await source().get()
    expect(authorizations).toEqual(['Basic ' + btoa(`job+client:${SECRET}`)])
  })

  test('reuses a token until 60 s before expires_in, then fetches another', async () => {
    let clock = 1_000_000
    const tokens = source(() => clock)
    const first = await tokens.get()
    clock += 3600_000 - 61_000
    expect(await tokens.get()).toBe(first)
    clock += 2_000
    expect(await tokens.get()).not.toBe(first)
    expect(authorizations).toHaveLength(2)
  })

  test("without expires_in, the JWT's exp says how long it lives", async () => {
    const key = new TextEncoder().encode('k'.repeat(32))
    let clock = Date.now()
    answer = async () => ({ status: 200, body: { access_token: await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(clock / 1000) + 600).setJti(String(++issued)).sign(key) } })
    const tokens = source(() => clock)
    const first = await tokens.get()
    clock += 500_000
    expect(await tokens.get()).toBe(first)
    clock += 50_000
    expect(await tokens.get()).not.toBe(first)
  })

  test('a JWT whose exp has passed by a local clock ahead of the issuer is still reused', async () => {
    const key = new TextEncoder().encode('k'.repeat(32))
    let clock = Date.now()
    // The issuer's clock an hour behind ours: the tokens it signs for 10 minutes look expired on arrival.
    const issuerNow = () => Math.floor((clock - 3600_000) / 1000)
    for (const withIat of [true, false]) {
      answer = async () => {
        const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(issuerNow() + 600).setJti(String(++issued))
        return { status: 200, body: { access_token: await (withIat ? jwt.setIssuedAt(issuerNow()) : jwt).sign(key) } }
      }
      authorizations = []
      const tokens = source(() => clock)
      const first = await tokens.get()
      clock += 1_000
      expect(await tokens.get()).toBe(first)
      expect(await tokens.get()).toBe(first)
      expect(authorizations).toHaveLength(1)
    }
  })

  test('a short-lived token is used for half its lifetime', async () => {
    let clock = 0
    answer = async () => ({ status: 200, body: { access_token: `short-${++issued}`, expires_in: 5 } })
    const tokens = source(() => clock)
    const first = await tokens.get()
    clock += 2_400
    expect(await tokens.get()).toBe(first)
    clock += 200
    expect(await tokens.get()).not.toBe(first)
  })

  test('callers asking at once share one request', async () => {
    answer = async () => {
      await Bun.sleep(50)
      return defaultAnswer()
    }
    const tokens = source()
    const got = await Promise.all(Array.from({ length: 10 }, () => tokens.get()))
    expect(new Set(got).size).toBe(1)
    expect(authorizations).toHaveLength(1)
  })

  test('renew replaces a refused token once, however many callers saw it refused', async () => {
    const tokens = source()
    const refused = await tokens.get()
    const renewed = await Promise.all([tokens.renew(refused), tokens.renew(refused), tokens.renew(refused)])
    expect(new Set(renewed).size).toBe(1)
    expect(renewed[0]).not.toBe(refused)
    expect(await tokens.renew(refused)).toBe(renewed[0]!)
    expect(authorizations).toHaveLength(2)
  })

  test('an OAuth2 error is one line with its code, never the secret', async () => {
    answer = async () => ({ status: 401, body: { error: 'invalid_client', error_description: `client authentication failed for ${SECRET}` } })
    const error = await source().get().catch((error) => error)
    expect(error).toBeInstanceOf(TokenError)
    expect(error.message).toMatch(/^token endpoint http:\/\/127\.0\.0\.1:\d+\/token refused client job client: invalid_client$/)
    answer = async () => ({ status: 400, body: { error: 'unauthorized_client', error_description: 'grant type not allowed' } })
    expect((await source().get().catch((error) => error)).message).toEndWith(': unauthorized_client (grant type not allowed)')
  })
})
