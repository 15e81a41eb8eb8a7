// start-job's requests and redirects, which fetch follows: a redirect within the origin keeps the
// Authorization header, one to another origin never carries it (a bearer token or the client secret would
// go to a host it was not meant for), and a 303 continues as a GET without the body. Bun's fetch does this
// as the Fetch standard says; start-job relies on it, and this holds a Bun upgrade to it.

import { afterAll, describe, expect, test } from 'bun:test'
import { fetchJson } from '../../src/snapshot/http.ts'

type Seen = { path: string; method: string; authorization: string | null; body: string }

const seen: Seen[] = []
const serve = (redirect: (url: URL) => Response | null) =>
  Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      const url = new URL(request.url)
      seen.push({ path: url.pathname, method: request.method, authorization: request.headers.get('authorization'), body: await request.text() })
      return redirect(url) ?? Response.json({ data: { at: url.pathname } })
    },
  })
const other = serve(() => null)
const origin = serve((url) => {
  if (url.pathname === '/moved') return Response.redirect(`http://127.0.0.1:${origin.port}/graphql`, 307)
  if (url.pathname === '/away') return Response.redirect(`http://127.0.0.1:${other.port}/graphql`, 308)
  if (url.pathname === '/see-other') return Response.redirect('/graphql', 303)
  return null
})
afterAll(() => {
  origin.stop(true)
  other.stop(true)
})

const post = (path: string) =>
  fetchJson(`http://127.0.0.1:${origin.port}${path}`, () => ({ method: 'POST', headers: { authorization: 'Bearer t0ken', 'content-type': 'application/json' }, body: '{"q":1}' }), { what: 'test' })

describe('fetchJson and redirects', () => {
  test('within the origin the request goes on whole; to another origin without Authorization', async () => {
    seen.length = 0
    expect(await post('/moved')).toEqual({ status: 200, ok: true, body: { data: { at: '/graphql' } } })
    expect(seen[1]).toEqual({ path: '/graphql', method: 'POST', authorization: 'Bearer t0ken', body: '{"q":1}' })

    seen.length = 0
    expect((await post('/away')).body).toEqual({ data: { at: '/graphql' } })
    expect(seen[1]).toEqual({ path: '/graphql', method: 'POST', authorization: null, body: '{"q":1}' })
  })

  test('a 303 continues as a GET without the body', async () => {
    seen.length = 0
    expect((await post('/see-other')).status).toBe(200)
    expect(seen[1]).toMatchObject({ path: '/graphql', method: 'GET', authorization: 'Bearer t0ken', body: '' })
  })
})
