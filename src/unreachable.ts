// The one error for a server the connector cannot reach at start-up. Its message says which server, at
// which address (never with credentials), what was tried and what the server or the network answered, so
// that the one line an operator sees points at the flag or the host to look at.

import { errorLine } from './log.ts'

export class Unreachable extends Error {
  override name = 'Unreachable'
  constructor(server: string, address: string, tried: string, cause: unknown) {
    super(`cannot reach ${server} at ${address} (${tried}): ${errorLine(cause)}`, { cause })
  }
}

