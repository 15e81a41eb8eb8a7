// Access tokens for the workspace API: the OAuth2 client-credentials grant (RFC 6749 4.4) against the
// token endpoint, the client authenticated with client_secret_basic. Guarantees: a token is reused until
// RENEW_BEFORE_EXPIRY_MS before it expires (half its lifetime before, when it lives less than twice that);
// callers asking at the same time share one request; an
// OAuth2 error is one line with its `error` code, and the secret never appears in any message.

import { decodeJwt } from 'jose'
import type { Secret } from '../config.ts'
import { fetchJson } from './http.ts'

// A token this close to its expiry is renewed before use: room for a slow page and clock skew. A token that
// lives less than twice this is renewed at half its lifetime, so that it is still used at all.
const RENEW_BEFORE_EXPIRY_MS = 60_000
// A token that states no lifetime we can use (no expires_in, no JWT exp ahead of us) is used for this long.
const UNKNOWN_LIFETIME_MS = 5 * 60_000

export class TokenError extends Error {
  override name = 'TokenError'
}

export type TokenSourceOptions = {
  tokenUrl: string
  clientId: string
  clientSecret: Secret
  signal?: AbortSignal
  onRetry?: (reason: string, delayMs: number) => void
  now?: () => number
}

export type TokenSource = {
  /** A token valid for at least RENEW_BEFORE_EXPIRY_MS more (fetched when needed). */
  get(): Promise<string>
  /** A token other than `rejected`, which the API refused: a fresh one unless another caller already renewed. */
  renew(rejected: string): Promise<string>
}

type Token = { value: string; renewAt: number }

export function createTokenSource(options: TokenSourceOptions): TokenSource {
  const now = options.now ?? Date.now
  let current: Token | null = null
  let pending: Promise<Token> | null = null

  // Single flight: whoever comes while a request is out waits for that one.
  function refresh(): Promise<Token> {
    pending ??= request().then(
      (token) => {
        current = token
        pending = null
        return token
      },
      (error) => {
        pending = null
        throw error
      },
    )
    return pending
  }

  async function request(): Promise<Token> {
    // The token's life is counted from the request, not from the answer: an answer read late (a busy
    // process, a slow endpoint) would otherwise have the token outlive its expiry by that delay.
    const issuedAt = now()
    const answer = await fetchJson(
      options.tokenUrl,
      () => ({
        method: 'POST',
        headers: {
          authorization: basicAuthorization(options.clientId, options.clientSecret.reveal()),
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials' }),
      }),
      { what: `token endpoint ${options.tokenUrl}`, signal: options.signal, onRetry: options.onRetry },
    )
    const body = answer.body as Record<string, unknown> | null
    if (!answer.ok || typeof body?.access_token !== 'string') throw new TokenError(refusal(options, answer.status, body))
    const lifetime = lifetimeMs(body.access_token, body.expires_in, issuedAt)
    return { value: body.access_token, renewAt: issuedAt + lifetime - Math.min(RENEW_BEFORE_EXPIRY_MS, lifetime / 2) }
  }

  return {
    async get() {
      if (current && now() < current.renewAt) return current.value
      return (await refresh()).value
    },
    async renew(rejected) {
      if (pending) return (await pending).value
      if (current && current.value !== rejected) return current.value
      return (await refresh()).value
    },
  }
}

/**
 * How long the token lives: `expires_in`, else its JWT `exp` less `iat` (both by the issuer's clock, so a
 * local clock ahead of it does not matter), else `exp` by the local clock while that is still ahead, else
 * UNKNOWN_LIFETIME_MS: a token that looks expired on arrival is the clocks' disagreement, and renewing it
 * before every page would fetch a token a page.
 */
function lifetimeMs(token: string, expiresIn: unknown, issuedAt: number): number {
  if (typeof expiresIn === 'number' && expiresIn > 0) return expiresIn * 1000
  try {
    const { exp, iat } = decodeJwt(token)
    if (typeof exp === 'number' && typeof iat === 'number' && exp > iat) return (exp - iat) * 1000
    if (typeof exp === 'number' && exp * 1000 > issuedAt) return exp * 1000 - issuedAt
  } catch {
    // An opaque token: nothing to read.
  }
  return UNKNOWN_LIFETIME_MS
}

/** RFC 6749 2.3.1: both parts form-encoded, then joined and base64-encoded. */
function basicAuthorization(clientId: string, clientSecret: string): string {
  const encode = (part: string) => encodeURIComponent(part).replace(/%20/g, '+')
  return 'Basic ' + btoa(`${encode(clientId)}:${encode(clientSecret)}`)
}

// RFC 6749 5.2: { error, error_description }. The description is the server's text: it is shown only when
// it does not echo the secret back.
function refusal(options: TokenSourceOptions, status: number, body: Record<string, unknown> | null): string {
  const code = typeof body?.error === 'string' ? body.error : `HTTP ${status} without an OAuth2 error`
  const description = typeof body?.error_description === 'string' && !body.error_description.includes(options.clientSecret.reveal()) ? ` (${body.error_description})` : ''
  return `token endpoint ${options.tokenUrl} refused client ${options.clientId}: ${code}${description}`
}
