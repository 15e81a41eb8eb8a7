// Bearer JWTs on /v1/api/* (contract section 5), checked with jose against the issuer's keys, found once
// through its OpenID discovery document. Guarantees: only asymmetric signatures from a key of the issuer's
// JWKS pass (so neither `alg: none` nor an HMAC keyed with a public key does); `iss` must be the issuer,
// `exp` must be present and not past, `aud` must match when an audience is set. Why a token failed goes
// to the debug log only: the client learns nothing but 401.

import { type JWTVerifyGetKey, createRemoteJWKSet, jwtVerify } from 'jose'
import type { Logger } from '../log.ts'

const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']
// Clocks of the issuer and of this host differ a little; more would stretch every token's life.
const CLOCK_TOLERANCE_S = 30
// An unknown `kid` refetches the JWKS (a rotated key), at most this often: a stream of forged kids cannot
// turn into a stream of requests to the issuer.
const JWKS_REFETCH_COOLDOWN_MS = 1_000
const ISSUER_TIMEOUT_MS = 5_000
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/

export type Authorizer = (authorization: string | null) => Promise<boolean>

export function createAuthorizer(options: { issuer: string; audience: string | null; log: Logger }): Authorizer {
  const { issuer, audience, log } = options
  let keys: Promise<JWTVerifyGetKey> | null = null

  /** The issuer's key set, discovered on first use; a failed discovery is tried again on the next request. */
  function discover(): Promise<JWTVerifyGetKey> {
    keys ??= (async () => {
      const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`
      const response = await fetch(url, { signal: AbortSignal.timeout(ISSUER_TIMEOUT_MS) })
      if (!response.ok) throw new Error(`${url} answered ${response.status}`)
      const { jwks_uri: jwksUri } = (await response.json()) as { jwks_uri?: string }
      if (!jwksUri) throw new Error(`${url} names no jwks_uri`)
      return createRemoteJWKSet(new URL(jwksUri), { cooldownDuration: JWKS_REFETCH_COOLDOWN_MS, timeoutDuration: ISSUER_TIMEOUT_MS })
    })().catch((error) => {
      keys = null
      log.warn(`auth: the issuer's keys are unavailable (${(error as Error).message}); requests are refused until they are`)
      throw error
    })
    return keys
  }

  return async (authorization) => {
    const token = BEARER.exec(authorization ?? '')?.[1]
    if (!token) return false
    try {
      await jwtVerify(token, await discover(), {
        issuer,
        audience: audience ?? undefined,
        algorithms: ASYMMETRIC_ALGORITHMS,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['exp'],
      })
      return true
    } catch (error) {
      log.debug(`auth: token refused (${(error as Error).message})`)
      return false
    }
  }
}
