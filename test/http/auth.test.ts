// Bearer JWTs on /v1/api/*: end to end with tokens from a real oidc-provider (accepted, refused, a rotated
// key picked up, 503 when the issuer is down from the start), every kind of bad token, minted with jose
// against an issuer whose key the test holds, and that issuer's outage.

import { afterAll, beforeAll, describe, expect, test as bunTest } from 'bun:test'
import { type JWTPayload, SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose'
import { createAuthorizer } from '../../src/http/auth.ts'
import { testLog } from '../support/log.ts'
import { type OidcIssuer, startOidcIssuer } from '../support/oidc.ts'
import { freePort, waitFor } from '../support/ports.ts'
import { openStream } from '../support/sse.ts'
import { type Connector, type Stack, startConnector, startStack } from '../support/stack.ts'

// Real servers on a shared machine: each test has a budget of its own, whatever the run's default.
const test = (name: string, body: () => Promise<unknown> | unknown, timeoutMs = 120_000) => bunTest(name, body as () => Promise<void>, timeoutMs)

const AUDIENCE = 'task-connector'
const client = { clientId: 'consumer', clientSecret: 'consumer-secret' }

describe('with --auth-issuer, end to end with oidc-provider', () => {
  let stack: Stack
  let issuer: OidcIssuer
  let connector: Connector
  let base: string

  beforeAll(async () => {
    ;[stack, issuer] = await Promise.all([startStack(), startOidcIssuer({ clients: [client], audience: AUDIENCE })])
    connector = await startConnector(stack, { flags: ['--auth-issuer', issuer.issuer, '--auth-audience', AUDIENCE] })
    base = `http://127.0.0.1:${connector.port}`
  }, 120_000)
  afterAll(async () => {
    await connector?.kill()
    await Promise.all([stack?.stop(), issuer?.stop()])
  }, 120_000)

  const get = (path: string, token?: string) => fetch(base + path, { headers: token ? { authorization: `Bearer ${token}` } : {} })

  test('a token from the issuer opens the Snapshot and the Stream', async () => {
    const token = await issuer.token()
    expect((await get('/v1/api/ws/Snapshot', token)).status).toBe(200)
    const stream = await openStream(`${base}/v1/api/ws/Stream`, { authorization: `Bearer ${token}` })
    expect(stream.status).toBe(200)
    stream.close()
  })

  test('without a token, or with a malformed one: 401, WWW-Authenticate: Bearer, no detail', async () => {
    for (const authorization of [undefined, 'Bearer', 'Bearer not-a-jwt', `Basic ${btoa('consumer:consumer-secret')}`]) {
      const response = await fetch(`${base}/v1/api/ws/Snapshot`, { headers: authorization ? { authorization } : {} })
      expect(response.status).toBe(401)
      expect(response.headers.get('www-authenticate')).toBe('Bearer')
      expect(await response.json()).toEqual({ error: 'unauthorized', message: 'a valid bearer token is required' })
    }
    // Refused before the parameters are looked at: nothing is learnt without a token.
    expect((await get('/v1/api/ws/Stream?workspace=nope')).status).toBe(401)
    expect((await get(`/v1/api/ws/Stream?workspace=${crypto.randomUUID()}&workspace=${crypto.randomUUID()}`)).status).toBe(401)
  })

  test('the status page, /info, /info/history, /healthz, /readyz, /metrics and /openapi.json stay open', async () => {
    for (const path of ['/', '/info', '/info/history', '/healthz', '/readyz', '/metrics', '/openapi.json']) expect((await get(path)).status).toBe(200)
    expect(connector.log()).not.toContain('no --auth-issuer')
  })

  test('a rotated signing key is picked up (within the JWKS refetch cooldown of a second)', async () => {
    await issuer.rotateKeys()
    const token = await issuer.token()
    const rotatedAt = performance.now()
    await waitFor('the new key to be accepted', async () => (await get('/v1/api/ws/Snapshot', token)).status === 200, 5_000, 100)
    expect(performance.now() - rotatedAt).toBeLessThan(2_000)
  })

  test('a fresh start while the issuer cannot be reached answers 503 in the error shape, not 401', async () => {
    const token = await issuer.token()
    const down = `http://127.0.0.1:${await freePort()}`
    // The same slot is held by the first connector: this one stands by, which the Snapshot does not mind.
    const fresh = await startConnector(stack, { flags: ['--auth-issuer', down, '--auth-audience', AUDIENCE], until: 'answering' })
    try {
      const response = await fetch(`http://127.0.0.1:${fresh.port}/v1/api/ws/Snapshot`, { headers: { authorization: `Bearer ${token}` } })
      expect(response.status).toBe(503)
      expect(await response.json()).toEqual({ error: 'unavailable', message: expect.any(String) })
      // Without a token there is nothing to check against the keys: still 401.
      expect((await fetch(`http://127.0.0.1:${fresh.port}/v1/api/ws/Snapshot`)).status).toBe(401)
    } finally {
      await fresh.kill()
    }
  })
})

describe('bad tokens, minted with jose', () => {
  let server: ReturnType<typeof Bun.serve>
  let issuerUrl: string
  let privateKey: CryptoKey
  let publicPem: string
  let authorize: ReturnType<typeof createAuthorizer>
  const kid = 'key-1'
  // What the issuer answers, and how often it was asked.
  let issuerAnswers: 'keys' | 'failure' | 'another issuer' = 'keys'
  let issuerRequests = 0

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true })
    privateKey = pair.privateKey
    publicPem = await exportSPKI(pair.publicKey)
    const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg: 'RS256', use: 'sig' }
    server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch(request) {
        issuerRequests++
        if (issuerAnswers === 'failure') return new Response('down', { status: 502 })
        const path = new URL(request.url).pathname
        if (path === '/.well-known/openid-configuration')
          return Response.json({ issuer: issuerAnswers === 'another issuer' ? 'https://elsewhere.example' : issuerUrl, jwks_uri: `${issuerUrl}/jwks` })
        if (path === '/jwks') return Response.json({ keys: [jwk] })
        return new Response('not found', { status: 404 })
      },
    })
    issuerUrl = `http://127.0.0.1:${server.port}`
    authorize = createAuthorizer({ issuer: issuerUrl, audience: AUDIENCE, log: testLog })
  })
  afterAll(() => server?.stop(true))

  const now = () => Math.floor(Date.now() / 1000)
  const claims = (): JWTPayload => ({ iss: issuerUrl, aud: AUDIENCE, sub: 'consumer', iat: now(), exp: now() + 300 })
  const signed = (payload: JWTPayload, header: { alg: string; kid?: string } = { alg: 'RS256', kid }, key: CryptoKey | Uint8Array = privateKey) =>
    new SignJWT(payload).setProtectedHeader(header).sign(key)
  const bearer = async (token: string | Promise<string>) => authorize(`Bearer ${await token}`)
  const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')

  test('a well-formed token from this issuer passes (the cases below differ from it in one thing each)', async () => {
    expect(await bearer(signed(claims()))).toBe('ok')
  })

  test('the scheme name is case-insensitive (RFC 7235)', async () => {
    const token = await signed(claims())
    for (const scheme of ['bearer', 'BEARER', 'BeArEr']) expect(await authorize(`${scheme} ${token}`)).toBe('ok')
  })

  test('the allow-list refuses an asymmetric algorithm it does not name, signed by a key of the JWKS', async () => {
    const narrowed = createAuthorizer({ issuer: issuerUrl, audience: AUDIENCE, log: testLog, algorithms: ['PS256'] })
    expect(await narrowed(`Bearer ${await signed(claims())}`)).toBe('refused')
  })

  // jose refuses these two whatever the allow-list says (a JWKS holds no symmetric key, `none` is never verified).
  const refused: [string, () => Promise<string>][] = [
    ['alg none', async () => `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(claims())}.`],
    ['HS256 signed with the public key', () => signed(claims(), { alg: 'HS256', kid }, new TextEncoder().encode(publicPem))],
    ['an unknown key', async () => signed(claims(), { alg: 'RS256', kid: 'key-2' }, (await generateKeyPair('RS256')).privateKey)],
    ['a key of the JWKS\'s id that is not its key', async () => signed(claims(), { alg: 'RS256', kid }, (await generateKeyPair('RS256')).privateKey)],
    ['a wrong issuer', () => signed({ ...claims(), iss: 'http://127.0.0.1:1' })],
    ['a wrong audience', () => signed({ ...claims(), aud: 'someone-else' })],
    ['expired (past the clock tolerance)', () => signed({ ...claims(), exp: now() - 120 })],
    ['not yet valid', () => signed({ ...claims(), nbf: now() + 120 })],
    ['no expiry', () => signed({ iss: issuerUrl, aud: AUDIENCE, sub: 'consumer' })],
  ]
  for (const [name, token] of refused)
    test(`refused: ${name}`, async () => {
      expect(await bearer(token())).toBe('refused')
    })

  /** Runs `body` while the issuer answers so, then lets it answer with its keys again. */
  async function whileIssuerAnswers(answer: typeof issuerAnswers, body: () => Promise<void>) {
    issuerAnswers = answer
    try {
      await body()
    } finally {
      issuerAnswers = 'keys'
    }
  }

  test('with the issuer down after the first good request, good tokens pass past the keys\' age, and others are still refused', async () => {
    const KEYS_MAX_AGE_MS = 200
    const holding = createAuthorizer({ issuer: issuerUrl, audience: AUDIENCE, log: testLog, keysMaxAgeMs: KEYS_MAX_AGE_MS })
    expect(await holding(`Bearer ${await signed(claims())}`)).toBe('ok')
    await whileIssuerAnswers('failure', async () => {
      const requestsBefore = issuerRequests
      const stoppedAt = performance.now()
      // Past several key ages, each request asks for fresh keys (the issuer fails), and still passes.
      while (performance.now() - stoppedAt < 5 * KEYS_MAX_AGE_MS) {
        expect(await holding(`Bearer ${await signed(claims())}`)).toBe('ok')
        await Bun.sleep(KEYS_MAX_AGE_MS / 4)
      }
      expect(issuerRequests).toBeGreaterThan(requestsBefore)
      expect(await holding(`Bearer ${await signed({ ...claims(), aud: 'someone-else' })}`)).toBe('refused')
    })
  })

  test('with no keys yet and the issuer failing: unavailable, and a flood of tokens asks the issuer once per cool-down', async () => {
    await whileIssuerAnswers('failure', async () => {
      const fresh = createAuthorizer({ issuer: issuerUrl, audience: AUDIENCE, log: testLog })
      const requestsBefore = issuerRequests
      const token = await signed(claims())
      const verdicts = await Promise.all(Array.from({ length: 200 }, () => fresh(`Bearer ${token}`)))
      expect(new Set(verdicts)).toEqual(new Set(['unavailable']))
      expect(issuerRequests - requestsBefore).toBe(1)
    })
  })

  test('a discovery document that names another issuer is not trusted', async () => {
    await whileIssuerAnswers('another issuer', async () => {
      const misled = createAuthorizer({ issuer: issuerUrl, audience: AUDIENCE, log: testLog })
      expect(await misled(`Bearer ${await signed(claims())}`)).toBe('unavailable')
    })
  })
})
