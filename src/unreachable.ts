// The errors for a server that fails the connector at start-up: one it cannot reach, and one that answers a query
// with an error of the query itself (a missing function, a permission). Each message says which server, at which
// address (never with credentials), what was tried and what the server or the network answered, so that the one
// line an operator sees points at the flag, the host or the server's set-up to look at.

import { errorLine } from './log.ts'

export class Unreachable extends Error {
  override name = 'Unreachable'
  constructor(server: string, address: string, tried: string, cause: unknown) {
    super(`cannot reach ${server} at ${address} (${tried}): ${errorLine(cause)}`, { cause })
  }
}

export class QueryRefused extends Error {
  override name = 'QueryRefused'
  constructor(server: string, address: string, tried: string, cause: unknown) {
    super(`${server} at ${address} refused a query (${tried}): ${errorLine(cause)}`, { cause })
  }
}

// SQLSTATE classes that mean the server was not reached, or would not let us in, rather than that a query failed:
// connection exception, invalid authorization, invalid catalog name (no such database), insufficient resources,
// operator intervention (shutting down, starting up).
const NOT_REACHED_CLASSES = new Set(['08', '28', '3D', '53', '57'])

/** What a failed start-up query to PostgreSQL is: an SQL error the server answered, or a server not reached. */
export function postgresStartupError(address: string, tried: string, error: unknown): Error {
  const { name, code } = (error ?? {}) as { name?: string; code?: unknown }
  const answered = name === 'PostgresError' && typeof code === 'string' && !NOT_REACHED_CLASSES.has(code.slice(0, 2))
  return answered ? new QueryRefused('PostgreSQL', address, tried, error) : new Unreachable('PostgreSQL', address, tried, error)
}
