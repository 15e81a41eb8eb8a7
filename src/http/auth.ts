// Bearer JWTs on /v1/api/* (contract section 5), checked with jose against the issuer's keys, found through
// its OpenID discovery document. Guarantees: only signatures of an allowed asymmetric algorithm from a key
// of the issuer's JWKS pass (so neither `alg: none` nor an HMAC keyed with a public key does); `iss` must
// be the issuer, `exp` must be present and not past, `aud` must match when an audience is set. Why a token
// failed goes to the debug log only: the client learns nothing but 401. When the issuer cannot be reached,
// the keys fetched last stay in use, however old; with none yet the verdict is `unavailable` (503), and
// the issuer is asked again only after a cool-down, whatever the number of requests.

import { type JSONWebKeySet, type JWTVerifyGetKey, createLocalJWKSet, jwtVerify } from 'jose'
import type { Logger } from '../log.ts'

export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']
// Clocks of the issuer and of this host differ a little; more would stretch every token's life.
const CLOCK_TOLERANCE_S = 30
// Keys older than this are fetched again (a key the issuer withdrew stops passing): jose's own default age.
export const KEYS_MAX_AGE_MS = 10 * 60_000
// An unknown `kid` refetches the JWKS (a rotated key), at most this often: a stream of forged kids cannot
// turn into a stream of requests to the issuer.
const JWKS_REFETCH_COOLDOWN_MS = 1_000
// After a failed fetch the issuer is left alone this long: a flood of token-shaped headers while it is down
// costs it nothing, and a client without keys yet learns 503 at once.
const ISSUER_FAILURE_COOLDOWN_MS = 5_000
const ISSUER_TIMEOUT_MS = 5_000
// RFC 7235: the scheme name is case-insensitive.
const BEARER = /^bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/i

/** `unavailable`: no keys of the issuer are known, and it cannot be reached (the client is told 503). */
export type Verdict = 'ok' | 'refused' | 'unavailable'
export type Authorizer = (authorization: string | null) => Promise<Verdict>

export type AuthorizerOptions = {
  issuer: string
  audience: string | null
  log: Logger
  keysMaxAgeMs?: number
  /** The signature algorithms that pass; the asymmetric ones unless narrowed. */
  algorithms?: string[]
}

export function createAuthorizer(options: AuthorizerOptions): Authorizer {
  const { issuer, audience, log } = options
  const keysMaxAgeMs = options.keysMaxAgeMs ?? KEYS_MAX_AGE_MS
  const algorithms = options.algorithms ?? ASYMMETRIC_ALGORITHMS
  let keys: { get: JWTVerifyGetKey; fetchedAt: number } | null = null
  let jwksUri: string | null = null
  let fetching: Promise<void> | null = null
  let failedAt = -Infinity
  let failing = false

  /** The JWKS's address, from the discovery document, which must name this issuer. */
  async function discover(): Promise<string> {
    const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`
    const document = (await fetchJson(url)) as { issuer?: string; jwks_uri?: string }
    if (document.issuer !== issuer) throw new Error(`${url} names issuer ${JSON.stringify(document.issuer)}, not ${JSON.stringify(issuer)} of --auth-issuer`)
    if (!document.jwks_uri) throw new Error(`${url} names no jwks_uri`)
    return document.jwks_uri
  }

  /** Fetches the keys again, once at a time; a failure keeps the keys held and starts the cool-down. */
  function refresh(): Promise<void> {
    fetching ??= (async () => {
      try {
        jwksUri ??= await discover()
        keys = { get: createLocalJWKSet((await fetchJson(jwksUri)) as JSONWebKeySet), fetchedAt: performance.now() }
        if (failing) log.info('auth: the issuer\'s keys are fetched again')
        failing = false
      } catch (error) {
        failedAt = performance.now()
        if (!failing)
          log.warn(`auth: the issuer's keys cannot be fetched (${(error as Error).message}); ${keys ? 'the keys fetched last stay in use' : 'requests are answered 503 until they are'}`)
        failing = true
      } finally {
        fetching = null
      }
    })()
    return fetching
  }

  const coolingDown = () => performance.now() - failedAt < ISSUER_FAILURE_COOLDOWN_MS

  /** The keys to verify with: fetched when missing or old, unless the issuer failed a moment ago. */
  async function currentKeys(): Promise<JWTVerifyGetKey | null> {
    if ((!keys || performance.now() - keys.fetchedAt > keysMaxAgeMs) && !coolingDown()) await refresh()
    return keys?.get ?? null
  }

  /** A key for the token's header; an unknown `kid` (a rotated key) fetches the keys again, now and then. */
  const keyFor: JWTVerifyGetKey = async (header, token) => {
    try {
      return await keys!.get(header, token)
    } catch (error) {
      const stale = performance.now() - keys!.fetchedAt > JWKS_REFETCH_COOLDOWN_MS
      if ((error as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY' || !stale || coolingDown()) throw error
      await refresh()
      return keys!.get(header, token)
    }
  }

  return async (authorization) => {
    const token = BEARER.exec(authorization ?? '')?.[1]
    if (!token) return 'refused'
    if (!(await currentKeys())) return 'unavailable'
    try {
      await jwtVerify(token, keyFor, { issuer, audience: audience ?? undefined, algorithms, clockTolerance: CLOCK_TOLERANCE_S, requiredClaims: ['exp'] })
      return 'ok'
    } catch (error) {
      log.debug(`auth: token refused (${(error as Error).message})`)
      return 'refused'
    }
  }
}

async function fetchJson(url: string): Promise<unknown> {
  const response = await fetch(url, { signal: AbortSignal.timeout(ISSUER_TIMEOUT_MS) })
  if (!response.ok) throw new Error(`${url} answered ${response.status}`)
  return response.json()
}
