// GET / (contract section 5): the status page, one HTML document with its style and script inline, embedded
// in the binary. Guarantees: the page can reach this connector and nothing else: its Content-Security-Policy
// allows requests to its own origin only, and only the inline style and script it ships (by their hashes).

import { createHash } from 'node:crypto'
// Bun's types call an HTML import a bundle; imported `as text`, it is the document's text.
import page from './status-page.html' with { type: 'text' }

export const STATUS_PAGE = page as unknown as string

const hashOf = (tag: 'style' | 'script') => {
  const body = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(STATUS_PAGE)?.[1]
  if (body === undefined) throw new Error(`status page: no inline <${tag}>`)
  return `'sha256-${createHash('sha256').update(body).digest('base64')}'`
}

export const STATUS_PAGE_POLICY = [
  "default-src 'none'",
  `script-src ${hashOf('script')}`,
  `style-src ${hashOf('style')}`,
  "connect-src 'self'",
  // The favicon is an empty data: URL, so that the browser does not ask this server for /favicon.ico.
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

export function statusPageResponse(): Response {
  return new Response(STATUS_PAGE, {
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': STATUS_PAGE_POLICY,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-cache',
    },
  })
}
