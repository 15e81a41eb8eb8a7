import { CLIENT, startSnapshotStack, target } from './test/support/start-job.ts'
import { CONNECTOR_MEMORY_ENV } from './test/support/stack.ts'
import { readFileSync } from 'node:fs'
const stack = await startSnapshotStack({ workspaces: 20, tasksPerWorkspace: 5000 })
const field = (pid: number, f: string) => Math.round(Number(new RegExp(f + ':\\s+(\\d+)').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024)
try {
  for (const which of ['job', 'loop']) {
    const to = target('trace')
    const cmd = which === 'job'
      ? [process.execPath, 'src/cli.ts', 'start-job', '--oidc', stack.oidc.tokenEndpoint, '--ws', stack.api.url, '--client-id', CLIENT.clientId, '--client-secret', CLIENT.clientSecret, '--mongo-addr', stack.mongo.url, '--mongo-db', to.database, '--project-id', 'test-project', '--topic', to.topic, '--create-topic', '--log-format', 'json', '--once']
      : [process.execPath, 'scripts/bench/snapshot-ceiling.ts', stack.api.url, await stack.oidc.token(), '200', stack.pubsub.host, 'test-project', to.topic]
    const child = Bun.spawn(cmd, { env: { ...process.env, ...CONNECTOR_MEMORY_ENV, PUBSUB_EMULATOR_HOST: stack.pubsub.host }, stdout: 'ignore', stderr: 'ignore' })
    const start = Date.now(); const series: string[] = []
    const t = setInterval(() => { try { series.push(`${((Date.now() - start) / 1000).toFixed(1)}:${field(child.pid, 'VmRSS')}`) } catch {} }, 250)
    await child.exited; clearInterval(t)
    console.log(which, series.join(' '))
  }
} finally { await stack.stop() }
