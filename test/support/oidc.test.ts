// The OAuth2 issuer of the tests behaves as start-job and the HTTP API's tests need: client-credentials
// JWTs that verify against its JWKS with the configured audience and lifetime, wrong credentials refused
// the OAuth2 way, and a key rotation that leaves old tokens unverifiable on the same URL.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose'
import { basicAuth, type OidcIssuer, startOidcIssuer } from './oidc.ts'

const client = { clientId: 'snapshots', clientSecret: 'a secret: with spaces' }

describe('startOidcIssuer', () => {
  let issuer: OidcIssuer
  beforeAll(async () => {
    issuer = await startOidcIssuer({ clients: [client], accessTokenTtlSeconds: 7, audience: 'api' })
  }, 30_000)
  afterAll(() => issuer.stop())

  test('issues JWTs for the client that verify against its JWKS', async () => {
    const token = await issuer.token()
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(issuer.jwksUri)), { issuer: issuer.issuer, audience: 'api' })
    expect(payload.client_id).toBe(client.clientId)
    expect(payload.exp! - payload.iat!).toBe(7)
  })

  test('refuses wrong credentials with invalid_client', async () => {
    const response = await fetch(issuer.tokenEndpoint, {
      method: 'POST',
      headers: { authorization: basicAuth({ ...client, clientSecret: 'wrong' }), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    })
    expect(response.status).toBe(401)
    expect(((await response.json()) as { error: string }).error).toBe('invalid_client')
  })

  test('after rotateKeys, old tokens no longer verify and new ones do', async () => {
    const old = await issuer.token()
    await issuer.rotateKeys()
    const jwks = createRemoteJWKSet(new URL(issuer.jwksUri))
    await expect(jwtVerify(old, jwks)).rejects.toThrow()
    const fresh = await issuer.token()
    expect(decodeJwt(fresh).iss).toBe(issuer.issuer)
    await jwtVerify(fresh, jwks)
  })
})
