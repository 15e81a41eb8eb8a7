// A logger for tests: silent unless TC_TEST_LOG is set, so failures stay readable.

import { createLogger } from '../../src/log.ts'

export const testLog = createLogger({ level: process.env.TC_TEST_LOG ? 'debug' : 'error', format: 'pretty' })
