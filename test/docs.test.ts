// The documentation's relative links: every link and image of README.md and docs/*.md names a file that
// exists, and a `#fragment` names a heading of its page (as GitHub makes a heading's anchor).

import { expect, test } from 'bun:test'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'

const ROOT = join(import.meta.dir, '..')
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)]
// [text](target) and ![alt](target), the target up to a space (a title may follow) or the closing parenthesis.
const LINK = /!?\[[^\]]*\]\(([^)\s]+)[^)]*\)/g
const ABSOLUTE = /^[a-z][a-z0-9+.-]*:/i

/** The page's text without fenced code blocks and inline code, where brackets are not links. */
const prose = (text: string) => text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '')

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens; repeats get -1, -2. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>()
  const result = new Set<string>()
  for (const [, heading] of text.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const slug = heading!.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    result.add(count ? `${slug}-${count}` : slug)
  }
  return result
}

test('every relative link of README.md and docs/*.md resolves, to a file and to a heading of it', () => {
  const broken: string[] = []
  let checked = 0
  for (const page of PAGES) {
    for (const [, target] of prose(readFileSync(join(ROOT, page), 'utf8')).matchAll(LINK)) {
      if (ABSOLUTE.test(target!)) continue
      checked++
      const [path, fragment] = target!.split('#') as [string, string | undefined]
      const file = path ? join(ROOT, dirname(page), decodeURI(path)) : join(ROOT, page)
      if (!existsSync(file)) broken.push(`${page}: ${target} (no ${relative(ROOT, file)})`)
      else if (fragment && file.endsWith('.md') && !anchors(readFileSync(file, 'utf8')).has(fragment)) broken.push(`${page}: ${target} (no heading #${fragment})`)
    }
  }
  expect(broken).toEqual([])
  expect(checked).toBeGreaterThan(PAGES.length)
})
