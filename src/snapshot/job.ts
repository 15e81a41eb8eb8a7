// Placeholder until the start-job runner lands; lets the CLI compile and run its checks.

import type { StartJobConfig } from '../config.ts'
import type { Logger } from '../log.ts'

export async function startJob(config: StartJobConfig, log: Logger): Promise<void> {
  throw new Error('not implemented')
}
