// The stack and connector an end-to-end test file (or describe block) shares: started before its tests, stopped
// after them. A test may put a connector of its own in `connector` (a restart); the one there at the end is stopped.

import { afterAll, beforeAll } from 'bun:test'
import type { FerretDbOptions } from './ferretdb.ts'
import { type Connector, type Stack, startConnector, startStack } from './stack.ts'

const START_MS = 120_000

/** `program` names the command to run, when not the one the test run is for (the sources, or TC_BINARY). */
export function sharedStack(ferretDb: FerretDbOptions = {}, program?: () => string[]): { stack: Stack; connector: Connector } {
  const shared = {} as { stack: Stack; connector: Connector }
  beforeAll(async () => {
    shared.stack = await startStack({}, ferretDb)
    shared.connector = await startConnector(shared.stack, program ? { program: program() } : {})
  }, START_MS)
  afterAll(async () => {
    await shared.connector?.kill()
    await shared.stack?.stop()
  }, START_MS)
  return shared
}
