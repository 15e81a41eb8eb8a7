// The real @google-cloud/pubsub client speaks gRPC (HTTP/2) on Bun, in-process and inside a
// `bun build --compile` binary that has no node_modules beside it, against a real Pub/Sub server.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { publishOrdered } from '../../scripts/pubsub-probe.ts'
import type { TaskEvent } from '../../src/events/events.ts'
import { createPublisher } from '../../src/sinks/pubsub.ts'
import { waitFor } from '../support/ports.ts'
import { type PublishedMessage, type PubSubEmulator, startPubSubEmulator } from '../support/pubsub.ts'
import { tempDir } from '../support/server-process.ts'

const root = resolve(import.meta.dir, '../..')

let emulator: PubSubEmulator

beforeAll(async () => {
  emulator = await startPubSubEmulator()
}, 120_000)

afterAll(async () => {
  await emulator?.stop()
}, 120_000)

/** Every message arrived once, with its key and attributes, and each key's messages in publish order. */
function expectOrderedDelivery(messages: PublishedMessage[], count: number, keys: number) {
  expect(messages).toHaveLength(count)
  const lastSeqByKey = new Map<string, number>()
  const seen = new Set<number>()
  for (const m of messages) {
    const seq = Number(m.attributes.seq)
    expect(JSON.parse(m.data.toString())).toEqual({ seq })
    expect(m.attributes.key).toBe(`key-${seq % keys}`)
    expect(m.orderingKey).toBe(m.attributes.key!)
    expect(seq).toBeGreaterThan(lastSeqByKey.get(m.orderingKey) ?? -1)
    lastSeqByKey.set(m.orderingKey, seq)
    seen.add(seq)
  }
  expect(seen.size).toBe(count)
  expect(lastSeqByKey.size).toBe(keys)
}

describe('the Pub/Sub gRPC client on Bun', () => {
  test('publishes 1,000 ordered messages with attributes, batched, each key in order', async () => {
    const result = await publishOrdered(emulator.host, 'in-process', 1_000, 10)
    expect(result.published).toBe(1_000)
    expect(new Set(result.ids).size).toBe(1_000)
    expectOrderedDelivery(await emulator.messages('in-process'), 1_000, 10)
  })

  test(
    'works inside a compiled binary, without node_modules, configured by PUBSUB_EMULATOR_HOST',
    async () => {
      const dir = tempDir('pubsub-probe-')
      const probe = join(dir, 'probe')
      const build = Bun.spawnSync(['bun', 'build', '--compile', join(root, 'scripts/pubsub-probe.ts'), '--outfile', probe], {
        cwd: root,
        stdout: 'pipe',
        stderr: 'pipe',
      })
      expect(build.stderr.toString()).not.toContain('error')
      expect(build.exitCode).toBe(0)

      const run = Bun.spawnSync(hideNodeModules([probe, 'compiled', '1000', '10'], dir), {
        cwd: dir,
        env: { PATH: process.env.PATH, PUBSUB_EMULATOR_HOST: emulator.host },
        stdout: 'pipe',
        stderr: 'pipe',
        timeout: 60_000,
      })
      const stderr = run.stderr.toString()
      expect(stderr).toBe('') // no MetadataLookupWarning: the client stayed off the metadata server
      expect(run.exitCode).toBe(0)
      expect(JSON.parse(run.stdout.toString())).toMatchObject({ published: 1_000 })
      expectOrderedDelivery(await emulator.messages('compiled'), 1_000, 10)
    },
    120_000,
  )
})

describe('our publisher', () => {
  const event = (n: number): TaskEvent => ({
    id: `0000000001000000-${n.toString(16).padStart(8, '0')}`, type: 'task.created', source: 'cdc', workspaceId: 'w', taskId: `t${n}`,
    lsn: '0/1000000', xid: 1, commitTime: '2026-12-01T00:00:00.000Z', data: { id: `t${n}` }, previous: null,
  })

  test('a server that is down fails the publish at once, rather than retrying inside the call; it works once the server is back', async () => {
    const publisher = createPublisher({ projectId: 'test-project', topic: 'outage', serviceAccountFile: '', createTopic: true, emulatorHost: emulator.host })
    try {
      await publisher.start()
      await publisher.publish([event(1)])
      await emulator.pause()
      const startedAt = performance.now()
      const failure = await publisher.publish([event(2)]).then(() => null, (error) => error)
      expect({ failed: failure !== null, withinMs: performance.now() - startedAt < 5_000 }).toEqual({ failed: true, withinMs: true })
      await emulator.resume()
      // As the pipeline does: again until it succeeds (the channel reconnects after a backoff of its own).
      await waitFor('a publish after the outage', () => publisher.publish([event(3)]).then(() => true, () => false), 30_000, 200)
      expect((await emulator.messages('outage')).map((message) => message.attributes.eventId)).toEqual([event(1).id, event(3).id])
    } finally {
      await emulator.resume()
      await publisher.close()
    }
  }, 60_000)

  test('requests stay within Pub/Sub\'s 10 MiB, and an event over its 10 MB goes without its largest values, named in omitted', async () => {
    const publisher = createPublisher({ projectId: 'test-project', topic: 'limits', serviceAccountFile: '', createTopic: true, emulatorHost: emulator.host })
    const withDescription = (n: number, bytes: number): TaskEvent => ({ ...event(n), data: { id: `t${n}`, description: 'x'.repeat(bytes) } })
    try {
      await publisher.start()
      // 24 events of 900 kB: near 22 MB in all, more than two requests' worth, each request under 10 MiB.
      await publisher.publish(Array.from({ length: 24 }, (_, n) => withDescription(n, 900_000)))
      await publisher.publish([withDescription(24, 12_000_000)])
      const messages = await emulator.messages('limits')
      expect(messages).toHaveLength(25)
      const large = JSON.parse(messages[24]!.data.toString())
      expect(large).toMatchObject({ id: event(24).id, omitted: { data: ['description'], previous: [] }, data: { id: 't24' } })
      expect('description' in large.data).toBe(false)
      expect(messages.slice(0, 24).every((message) => JSON.parse(message.data.toString()).data.description.length === 900_000)).toBe(true)
    } finally {
      await publisher.close()
    }
  }, 60_000)
})

// A compiled binary that still reads node_modules at run time (protos JSON by __dirname) would pass
// here and fail where it is deployed; as root, a private mount namespace hides node_modules from it.
function hideNodeModules(cmd: string[], dir: string): string[] {
  if (process.getuid?.() !== 0 || !Bun.which('unshare')) return cmd
  const empty = join(dir, 'empty')
  mkdirSync(empty)
  const script = `mount --bind "$1" "$2" && shift 2 && exec "$@"`
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', empty, join(root, 'node_modules'), ...cmd]
}
