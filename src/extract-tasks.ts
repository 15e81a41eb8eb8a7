// Placeholder until the extract-tasks service lands; lets the CLI compile and run its checks.

import type { ExtractTasksConfig } from './config.ts'
import type { Logger } from './log.ts'

export async function extractTasks(config: ExtractTasksConfig, log: Logger): Promise<void> {
  throw new Error('not implemented')
}
