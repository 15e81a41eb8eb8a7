// A real OAuth2/OIDC token endpoint for the tests: oidc-provider on loopback, issuing JWT access tokens
// for the client-credentials grant (its resourceIndicators feature with accessTokenFormat 'jwt'), clients
// authenticating with client_secret_basic. rotateKeys() restarts it on the same port with a fresh signing
// key, so tokens signed by the old key stop verifying against the JWKS.

import { createServer, type Server } from 'node:http'
import { exportJWK, generateKeyPair, type JWK } from 'jose'
import Provider from 'oidc-provider'
import { freePort } from './ports.ts'

export type OidcClient = { clientId: string; clientSecret: string }

export type OidcIssuer = {
  issuer: string // e.g. http://127.0.0.1:PORT
  tokenEndpoint: string
  jwksUri: string
  /** A client-credentials access token (a JWT signed by the provider's current key) for the given client. */
  token(client?: OidcClient): Promise<string>
  /** Replaces the signing key (the old one leaves the JWKS); same issuer URL and port. */
  rotateKeys(): Promise<void>
  stop(): Promise<void>
}

export type OidcIssuerOptions = { clients: OidcClient[]; accessTokenTtlSeconds?: number; audience?: string }

const DEFAULT_TTL_SECONDS = 300
const DEFAULT_AUDIENCE = 'workspace-api'
const SIGNING_ALG = 'RS256'
const TOKEN_PATH = '/token'
const JWKS_PATH = '/jwks'
// The resource indicator every token is for (RFC 8707 wants an absolute URI); `audience` is the claim.
const RESOURCE = 'urn:task-connector:workspace-api'

export async function startOidcIssuer(options: OidcIssuerOptions): Promise<OidcIssuer> {
  const [first] = options.clients
  if (!first) throw new Error('startOidcIssuer needs at least one client')
  const ttl = options.accessTokenTtlSeconds ?? DEFAULT_TTL_SECONDS
  const audience = options.audience ?? DEFAULT_AUDIENCE
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  let server: Server | null = null

  async function start() {
    const provider = new Provider(issuer, {
      clients: options.clients.map((client) => ({
        client_id: client.clientId,
        client_secret: client.clientSecret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      })),
      jwks: { keys: [await signingKey()] },
      routes: { token: TOKEN_PATH, jwks: JWKS_PATH },
      ttl: { ClientCredentials: ttl },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          // Every client-credentials token is for the workspace API, asked for by name or not.
          defaultResource: () => RESOURCE,
          useGrantedResource: () => true,
          getResourceServerInfo: () => ({ scope: '', audience, accessTokenTTL: ttl, accessTokenFormat: 'jwt', jwt: { sign: { alg: SIGNING_ALG } } }),
        },
      },
    })
    server = createServer(provider.callback())
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject)
      server!.listen(port, '127.0.0.1', () => resolve())
    })
  }

  async function stopServer() {
    const current = server
    server = null
    if (!current) return
    current.closeAllConnections()
    await new Promise<void>((resolve) => current.close(() => resolve()))
  }

  await start()

  return {
    issuer,
    tokenEndpoint: issuer + TOKEN_PATH,
    jwksUri: issuer + JWKS_PATH,
    async token(client = first) {
      const response = await fetch(issuer + TOKEN_PATH, {
        method: 'POST',
        headers: { authorization: basicAuth(client), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials' }),
      })
      const body = (await response.json()) as { access_token?: string; error?: string }
      if (!response.ok || !body.access_token) throw new Error(`token endpoint answered ${response.status}: ${body.error}`)
      return body.access_token
    },
    async rotateKeys() {
      await stopServer()
      await start()
    },
    stop: stopServer,
  }
}

/** RFC 6749 2.3.1: both parts form-encoded before they are joined and base64-encoded. */
export function basicAuth(client: OidcClient): string {
  const encode = (part: string) => encodeURIComponent(part).replace(/%20/g, '+')
  return 'Basic ' + btoa(`${encode(client.clientId)}:${encode(client.clientSecret)}`)
}

async function signingKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true })
  return { ...(await exportJWK(privateKey)), alg: SIGNING_ALG, use: 'sig', kid: crypto.randomUUID() }
}
