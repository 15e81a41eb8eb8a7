import { join } from 'node:path'
import { CLIENT, startSnapshotStack, target } from './test/support/start-job.ts'
import { CONNECTOR_MEMORY_ENV } from './test/support/stack.ts'
const TASKS = Number(process.argv[2] ?? 100000)
const stack = await startSnapshotStack({ workspaces: 20, tasksPerWorkspace: TASKS / 20 })
const time = async (cmd: string[]) => {
  const child = Bun.spawn(['/usr/bin/time', '-f', 'TIME %U %S %M %e', ...cmd], { env: { ...process.env, ...CONNECTOR_MEMORY_ENV, PUBSUB_EMULATOR_HOST: stack.pubsub.host }, stdout: 'pipe', stderr: 'pipe' })
  const err = await new Response(child.stderr).text()
  await child.exited
  const [u, s, m, e] = /TIME (\S+) (\S+) (\S+) (\S+)/.exec(err)!.slice(1).map(Number)
  return { cpu: +(u! + s!).toFixed(2), rssMb: Math.round(m! / 1024), wall: e }
}
try {
  for (let round = 0; round < 2; round++) {
    const to = target('probe')
    const job = await time([process.execPath, 'src/cli.ts', 'start-job', '--oidc', stack.oidc.tokenEndpoint, '--ws', stack.api.url, '--client-id', CLIENT.clientId, '--client-secret', CLIENT.clientSecret, '--mongo-addr', stack.mongo.url, '--mongo-db', to.database, '--project-id', 'test-project', '--topic', to.topic, '--create-topic', '--log-format', 'json', '--once'])
    const loop = await time([process.execPath, 'scripts/bench/snapshot-ceiling.ts', stack.api.url, await stack.oidc.token(), '200', stack.pubsub.host, 'test-project', to.topic + '-loop'])
    console.log(JSON.stringify({ job, loop }))
  }
} finally { await stack.stop() }
