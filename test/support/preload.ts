// Loaded before every test file: integration tests start real servers, so the default budget is a minute;
// the tests that need longer say so themselves.

import { setDefaultTimeout } from 'bun:test'

setDefaultTimeout(60_000)
