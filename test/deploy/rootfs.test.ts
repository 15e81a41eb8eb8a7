// The container image's file system, proven without a container engine: scripts/rootfs.sh (which the
// Dockerfile's final stage copies whole) is built into a temp dir, and the binary runs inside it with chroot,
// as the image's numeric user, with the image's environment read from the Dockerfile itself. What a container
// runtime adds is added the same way here, in a mount namespace of the test's own: /proc, /dev and a
// generated /etc/hosts. The rootfs itself holds nothing else.

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { appendFileSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { shippedBinary } from '../support/binary.ts'
import { freePort, waitFor } from '../support/ports.ts'
import { removeDir, tempDir } from '../support/server-process.ts'
import { MONGO_DATABASE, type Stack, TOPIC, publishedEvents, startStack } from '../support/stack.ts'
import { createTask, createWorkspace } from '../support/workspace.ts'

const ROOT = join(import.meta.dir, '../..')
const CA_BUNDLE = 'etc/ssl/certs/ca-certificates.crt'
const CHROOT = Bun.which('chroot') ?? '/usr/sbin/chroot'

let work: string
let rootfs: string
let stack: Stack
let image: { env: Record<string, string>; user: string; entrypoint: string }
let privateCa: string

beforeAll(async () => {
  work = tempDir('rootfs-')
  rootfs = join(work, 'rootfs')
  run(['sh', join(ROOT, 'scripts/rootfs.sh'), rootfs, shippedBinary()])
  image = finalStage(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))

  // A private CA and a certificate for localhost, for a TLS listener the binary can trust only through the bundle.
  privateCa = join(work, 'ca.pem')
  run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=task-connector test CA',
    '-keyout', join(work, 'ca.key'), '-out', privateCa])
  run(['openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', join(work, 'server.key'), '-out', join(work, 'server.csr')])
  writeFileSync(join(work, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  run(['openssl', 'x509', '-req', '-in', join(work, 'server.csr'), '-CA', privateCa, '-CAkey', join(work, 'ca.key'), '-CAcreateserial',
    '-days', '1', '-extfile', join(work, 'san.ext'), '-out', join(work, 'server.pem')])
  stack = await startStack({}, { tls: { certFile: join(work, 'server.pem'), keyFile: join(work, 'server.key') } })
}, 180_000)
afterAll(async () => {
  await stack?.stop()
  if (work) removeDir(work)
}, 120_000)

function run(command: string[]) {
  const result = Bun.spawnSync(command, { stdout: 'pipe', stderr: 'pipe' })
  if (result.exitCode !== 0) throw new Error(`${command.join(' ')} failed: ${result.stderr.toString()}`)
}

/** ENV, USER and ENTRYPOINT of the Dockerfile's last stage. */
function finalStage(dockerfile: string) {
  const stage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '))
  const env: Record<string, string> = {}
  for (const [, name, value] of stage.matchAll(/^ENV (\w+)=(\S+)$/gm)) env[name!] = value!
  const user = /^USER (\S+)$/m.exec(stage)![1]!
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(stage)![1]!)[0] as string
  return { env, user, entrypoint }
}

/** Every file in the rootfs, relative to it. */
function filesIn(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((path) => statSync(join(dir, path)).isFile())
    .map((path) => relative(dir, join(dir, path)))
    .sort()
}

/**
 * Runs the image's entrypoint with `args` inside the rootfs, as its user and with its environment, after
 * mounting what a container runtime provides (in a mount namespace of its own, so nothing shows outside).
 */
function inImage(args: string[], env: Record<string, string> = {}) {
  const hosts = join(work, 'hosts')
  writeFileSync(hosts, '127.0.0.1\tlocalhost\n::1\tlocalhost\n')
  for (const mountPoint of ['proc', 'dev']) mkdirSync(join(rootfs, mountPoint), { recursive: true })
  writeFileSync(join(rootfs, 'etc/hosts'), '')
  const mounts = [
    `mount -t proc proc ${rootfs}/proc`,
    `mount --rbind /dev ${rootfs}/dev`,
    `mount --bind ${hosts} ${rootfs}/etc/hosts`,
  ].join(' && ')
  const [uid, gid] = image.user.split(':')
  const envArgs = Object.entries({ ...image.env, ...env }).map(([name, value]) => `${name}=${value}`)
  return Bun.spawn(
    ['unshare', '--mount', '--fork', 'sh', '-c', `${mounts} && exec "$@"`, 'sh',
      'env', '-i', ...envArgs, CHROOT, `--userspec=${uid}:${gid}`, rootfs, image.entrypoint, ...args],
    { stdout: 'pipe', stderr: 'pipe' },
  )
}

test('the rootfs holds the binary, its libraries, the CA bundle and the user files, nothing else', () => {
  const files = filesIn(rootfs)
  expect(files).toContain('tag-connector')
  expect(files).toContain(CA_BUNDLE)
  expect(files.filter((file) => !/^(lib|lib64|usr\/lib)\//.test(file))).toEqual(
    [CA_BUNDLE, 'etc/group', 'etc/nsswitch.conf', 'etc/passwd', 'tag-connector'].sort(),
  )
  expect(files.filter((file) => /^(lib|lib64|usr\/lib)\//.test(file)).every((file) => /\.so(\.\d+)*$/.test(file))).toBe(true)
})

test('version runs inside it as the image user', async () => {
  const child = inImage(['version'])
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: '' })
  expect(stdout).toMatch(/^tag-connector \d+\.\d+\.\d+\S* \(commit \S+, bun \d+\.\d+\.\d+\S*\)\n$/)
}, 60_000)

/** extract-tasks inside the image against the stack on loopback, by name (localhost), MongoDB over TLS. */
async function extractTasksInImage(slot: string) {
  const port = await freePort()
  const child = inImage(
    [
      'extract-tasks', '--db', stack.pg.database, '--pgHost', 'localhost', '--pgPort', String(stack.pg.port), '--user', stack.pg.user,
      '--mongo-addr', `mongodb://localhost:${stack.mongo.tlsPort}/?tls=true`, '--mongo-db', MONGO_DATABASE,
      '--project-id', 'test-project', '--topic', TOPIC, '--create-topic', '--slot', slot,
      '--serverHost', '127.0.0.1', '--serverPort', String(port), '--log-format', 'json',
    ],
    { PUBSUB_EMULATOR_HOST: stack.pubsub.host.replace('127.0.0.1', 'localhost') },
  )
  let logged = ''
  const logging = (async () => {
    for await (const chunk of child.stderr) logged += new TextDecoder().decode(chunk)
  })()
  return { child, port, log: () => logged, logging }
}

test('a CA bundle without the servers\' CA: the TLS connection to MongoDB is refused, so the bundle is the one the binary trusts', async () => {
  const { child, log } = await extractTasksInImage('untrusted')
  expect(await child.exited).toBe(1)
  expect(log()).toMatch(/cannot reach MongoDB at mongodb:\/\/localhost:\d+ \(connecting for 10 s\): .*(certificate|CERT)/i)
}, 60_000)

test('extract-tasks inside it streams a change to MongoDB (TLS, private CA in the bundle) and Pub/Sub, and answers /healthz', async () => {
  appendFileSync(join(rootfs, CA_BUNDLE), readFileSync(privateCa))
  const { child, port, log } = await extractTasksInImage('in_image')
  try {
    await waitFor('the connector in the image to stream (or exit)', async () => {
      if (child.exitCode !== null) return true
      const info = (await (await fetch(`http://127.0.0.1:${port}/info`)).json()) as { state: string }
      return info.state === 'streaming'
    }, 60_000)
    expect({ exitCode: child.exitCode, log: child.exitCode === null ? '' : log() }).toEqual({ exitCode: null, log: '' })
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200)
    const taskId = await createTask(stack.pg.sql, await createWorkspace(stack.pg.sql, 'image'), { title: 'from the image' })
    await waitFor('the task in MongoDB', async () => !!(await stack.db.collection('tasks').findOne({ _id: taskId as any })), 30_000)
    await waitFor('the event on Pub/Sub', async () => (await publishedEvents(stack)).some((event) => event.taskId === taskId), 30_000)
  } finally {
    if (process.env.TC_TEST_LOG) console.error(log())
    // unshare keeps signals to itself: the connector is its child (sh, env and chroot each exec the next).
    Bun.spawnSync(['pkill', '-TERM', '-P', String(child.pid)])
  }
  expect(await child.exited).toBe(0)
}, 120_000)
