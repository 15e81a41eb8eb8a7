// A real browser for the status page's test: Debian's headless Chromium (installed by scripts/setup), driven
// by puppeteer-core, which downloads no browser of its own.

import { existsSync } from 'node:fs'
import puppeteer, { type Browser } from 'puppeteer-core'

const CANDIDATES = ['/usr/bin/chromium-headless-shell', '/usr/bin/chromium']

export async function launchBrowser(): Promise<Browser> {
  const executablePath = process.env.TC_CHROMIUM ?? CANDIDATES.find((path) => existsSync(path))
  if (!executablePath) throw new Error(`no Chromium at ${CANDIDATES.join(' or ')} (scripts/setup installs chromium-headless-shell)`)
  // --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
  return puppeteer.launch({ executablePath, headless: true, args: ['--no-sandbox', '--headless'] })
}
