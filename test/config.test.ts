// Configuration: flags and TC_* variables in, typed and validated config out, secrets kept out of sight.

import { afterAll, describe, expect, test } from 'bun:test'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'citty'
import {
  ConfigError,
  EXTRACT_TASKS_FLAGS,
  START_JOB_FLAGS,
  envName,
  parseExtractTasksConfig,
  parseStartJobConfig,
  secret,
  type Args,
  type Env,
} from '../src/config.ts'
import { createLogger } from '../src/log.ts'

const SECRET = 'hunter2-do-not-print'
const dir = mkdtempSync(join(tmpdir(), 'tc-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function file(name: string, content: string): string {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

const extract = (args: Args, env: Env = {}, tty = false) => parseExtractTasksConfig({ db: 'workspace', ...args }, env, tty)
const startJob = (args: Args, env: Env = {}, tty = false) => parseStartJobConfig(args, env, tty)

function configError(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    const message = (error as Error).message
    expect(message).not.toContain('\n')
    return message
  }
  throw new Error('expected a ConfigError')
}

describe('defaults', () => {
  test('extract-tasks defaults are the contract defaults, with no secrets', () => {
    expect(extract({})).toEqual({
      postgres: { host: 'localhost', port: 5432, database: 'workspace', user: 'postgres', password: null },
      mongo: { url: 'mongodb://localhost:27017', database: 'task_connector' },
      pubsub: {
        projectId: 'target-datalake-ng',
        topic: 'taskTopic',
        serviceAccountFile: './service-account-file.json',
        createTopic: false,
      },
      workspaceApi: {
        tokenUrl: 'https://sso.test.meeraspace.com/token',
        graphqlUrl: 'https://test.meeraspace.com/graphql',
        clientId: 'nz-mdr',
        clientSecret: null,
      },
      http: { host: '0.0.0.0', port: 8080 },
      slot: 'task_connector',
      schema: 'public',
      initialLoad: 'auto',
      statusIntervalMs: 10_000,
      heartbeatIntervalMs: 15_000,
      auth: { issuer: null, audience: null },
      maxStreamClients: 1000,
      streamIdleTimeoutMs: 60_000,
      log: { level: 'info', format: 'json' },
    })
  })

  test('start-job defaults', () => {
    const config = startJob({})
    expect(config.schedule).toBe('*/30 * * * *')
    expect(config.once).toBe(false)
    expect(config.pageSize).toBe(200)
    expect(config.workspaceApi.clientSecret).toBeNull()
    expect(config.mongo.database).toBe('task_connector')
  })

  test('log format defaults to json off a terminal and pretty on one', () => {
    expect(extract({}, {}, false).log.format).toBe('json')
    expect(extract({}, {}, true).log.format).toBe('pretty')
    expect(extract({ 'log-format': 'json' }, {}, true).log.format).toBe('json')
  })
})

describe('environment', () => {
  test('env names are TC_ and the flag in upper snake case', () => {
    expect(envName('pgHost')).toBe('TC_PG_HOST')
    expect(envName('mongo-addr')).toBe('TC_MONGO_ADDR')
    expect(envName('serverPort')).toBe('TC_SERVER_PORT')
    expect(envName('password-file')).toBe('TC_PASSWORD_FILE')
    expect(envName('max-stream-clients')).toBe('TC_MAX_STREAM_CLIENTS')
  })

  test('every flag can come from the environment', () => {
    const config = parseExtractTasksConfig({}, {
      TC_DB: 'ws',
      TC_PG_HOST: 'pg.internal',
      TC_PG_PORT: '6543',
      TC_USER: 'replicator',
      TC_PASSWORD: SECRET,
      TC_SERVER_HOST: '127.0.0.1',
      TC_SERVER_PORT: '9090',
      TC_MONGO_ADDR: 'mongodb+srv://cluster.example.net',
      TC_MONGO_DB: 'tc',
      TC_PROJECT_ID: 'proj',
      TC_TOPIC: 'tasks',
      TC_SERVICE_ACCOUNT: '/etc/sa.json',
      TC_CREATE_TOPIC: 'true',
      TC_OIDC: 'http://sso.local/token',
      TC_WS: 'http://ws.local/graphql',
      TC_CLIENT_ID: 'client',
      TC_CLIENT_SECRET: 'shh',
      TC_SLOT: 'slot_2',
      TC_SCHEMA: 'app',
      TC_INITIAL_LOAD: 'never',
      TC_STATUS_INTERVAL: '500ms',
      TC_HEARTBEAT_INTERVAL: '0',
      TC_AUTH_ISSUER: 'https://issuer.example',
      TC_AUTH_AUDIENCE: 'tc',
      TC_MAX_STREAM_CLIENTS: '5',
      TC_LOG_LEVEL: 'debug',
      TC_LOG_FORMAT: 'pretty',
    }, false)
    expect(config.postgres).toMatchObject({ host: 'pg.internal', port: 6543, database: 'ws', user: 'replicator' })
    expect(config.postgres.password?.reveal()).toBe(SECRET)
    expect(config.http).toEqual({ host: '127.0.0.1', port: 9090 })
    expect(config.mongo).toEqual({ url: 'mongodb+srv://cluster.example.net', database: 'tc' })
    expect(config.pubsub).toEqual({ projectId: 'proj', topic: 'tasks', serviceAccountFile: '/etc/sa.json', createTopic: true })
    expect(config.workspaceApi.tokenUrl).toBe('http://sso.local/token')
    expect(config.workspaceApi.graphqlUrl).toBe('http://ws.local/graphql')
    expect(config.workspaceApi.clientId).toBe('client')
    expect(config.workspaceApi.clientSecret?.reveal()).toBe('shh')
    expect(config).toMatchObject({
      slot: 'slot_2',
      schema: 'app',
      initialLoad: 'never',
      statusIntervalMs: 500,
      heartbeatIntervalMs: 0,
      auth: { issuer: 'https://issuer.example', audience: 'tc' },
      maxStreamClients: 5,
      log: { level: 'debug', format: 'pretty' },
    })

    const job = parseStartJobConfig({}, { TC_SCHEDULE: '0 * * * *', TC_ONCE: '1', TC_PAGE_SIZE: '500' }, false)
    expect(job).toMatchObject({ schedule: '0 * * * *', once: true, pageSize: 500 })
  })

  test('a flag beats the environment', () => {
    const config = extract(
      { pgHost: 'from-flag', 'mongo-addr': 'mongodb://flag:27017', 'create-topic': false },
      { TC_PG_HOST: 'from-env', TC_MONGO_ADDR: 'mongodb://env:27017', TC_CREATE_TOPIC: 'true' },
    )
    expect(config.postgres.host).toBe('from-flag')
    expect(config.mongo.url).toBe('mongodb://flag:27017')
    expect(config.pubsub.createTopic).toBe(false)
  })

  test('an empty variable counts as unset', () => {
    expect(extract({}, { TC_PG_HOST: '' }).postgres.host).toBe('localhost')
  })

  test('booleans accept true/false/1/0 from the environment and nothing else', () => {
    expect(startJob({}, { TC_ONCE: 'TRUE' }).once).toBe(true)
    expect(startJob({}, { TC_ONCE: '0' }).once).toBe(false)
    expect(startJob({}, { TC_ONCE: 'false' }).once).toBe(false)
    expect(configError(() => startJob({}, { TC_ONCE: 'yes' }))).toBe('TC_ONCE must be true, false, 1 or 0 (got "yes")')
  })

  test('an invalid variable is named in the error', () => {
    expect(configError(() => extract({}, { TC_PG_PORT: 'abc' }))).toBe(
      'TC_PG_PORT must be an integer from 1 to 65535 (got "abc")',
    )
  })
})

describe('citty parsing', () => {
  const parse = (argv: string[]) =>
    parseArgs(
      argv,
      Object.fromEntries(EXTRACT_TASKS_FLAGS.map((flag) => [flag.name, { type: flag.kind }])),
    ) as Args

  test('parsed args of the real parser produce the config', () => {
    const config = parseExtractTasksConfig(
      parse(['--db', 'ws', '--pgPort=6000', '--mongo-addr', 'mongodb://m:1', '--create-topic']),
      {},
      false,
    )
    expect(config.postgres.port).toBe(6000)
    expect(config.mongo.url).toBe('mongodb://m:1')
    expect(config.pubsub.createTopic).toBe(true)
  })

  test('an unknown flag is named', () => {
    expect(configError(() => parseExtractTasksConfig(parse(['--db', 'x', '--pg-hots', 'h']), {}, false))).toBe(
      'unknown flag --pg-hots for extract-tasks (see tag-connector extract-tasks --help)',
    )
    expect(configError(() => startJob({ slot: 'x' }))).toContain('unknown flag --slot for start-job')
  })

  test('a stray word is an error', () => {
    expect(configError(() => parseExtractTasksConfig(parse(['--db', 'x', 'extra']), {}, false))).toBe(
      'unexpected argument "extra" for extract-tasks',
    )
  })

  test('a value flag without a value is an error', () => {
    expect(configError(() => parseExtractTasksConfig(parse(['--db', 'x', '--pgHost']), {}, false))).toBe(
      '--pgHost needs a value',
    )
  })

  test('both flag tables carry only distinct names', () => {
    for (const flags of [EXTRACT_TASKS_FLAGS, START_JOB_FLAGS]) {
      expect(new Set(flags.map((flag) => flag.name)).size).toBe(flags.length)
    }
  })

  test('no flag has a secret default', () => {
    const secrets = ['password', 'password-file', 'client-secret', 'client-secret-file']
    for (const flag of [...EXTRACT_TASKS_FLAGS, ...START_JOB_FLAGS]) {
      if (secrets.includes(flag.name)) expect(flag.default).toBeUndefined()
    }
  })
})

describe('secrets', () => {
  test('a password file is read, its trailing newline trimmed', () => {
    const path = file('pg-password', `${SECRET}\n`)
    expect(extract({ 'password-file': path }).postgres.password?.reveal()).toBe(SECRET)
    const crlf = file('client-secret', 'abc\r\n')
    expect(startJob({ 'client-secret-file': crlf }).workspaceApi.clientSecret?.reveal()).toBe('abc')
  })

  test('the file can come from the environment', () => {
    const path = file('pg-password-env', SECRET)
    expect(extract({}, { TC_PASSWORD_FILE: path }).postgres.password?.reveal()).toBe(SECRET)
  })

  test('a missing or unreadable file is named, its content never shown', () => {
    const missing = join(dir, 'missing')
    expect(configError(() => extract({ 'password-file': missing }))).toBe(`cannot read --password-file "${missing}" (ENOENT)`)
    const path = file('locked', SECRET)
    chmodSync(path, 0o000)
    const message = configError(() => {
      // root reads any file; then this case cannot happen, so force the error through a directory
      if (process.getuid?.() === 0) return extract({ 'password-file': dir })
      return extract({ 'password-file': path })
    })
    expect(message).toStartWith('cannot read --password-file "')
    expect(message).not.toContain(SECRET)
  })

  test('an empty file is an error', () => {
    const path = file('empty', '\n')
    expect(configError(() => extract({ 'password-file': path }))).toBe(`--password-file "${path}" is empty`)
  })

  test('giving both the value and the file is an error', () => {
    const path = file('both', SECRET)
    expect(configError(() => extract({ password: SECRET, 'password-file': path }))).toBe(
      'give either --password or --password-file, not both',
    )
    expect(configError(() => startJob({}, { TC_CLIENT_SECRET: 'a', TC_CLIENT_SECRET_FILE: path }))).toBe(
      'give either TC_CLIENT_SECRET or TC_CLIENT_SECRET_FILE, not both',
    )
  })

  test('a secret flag beats a secret file left in the environment', () => {
    const path = file('env-file', 'from-file')
    expect(extract({ password: 'from-flag' }, { TC_PASSWORD_FILE: path }).postgres.password?.reveal()).toBe('from-flag')
    expect(extract({ 'password-file': path }, { TC_PASSWORD: 'from-env' }).postgres.password?.reveal()).toBe('from-file')
  })

  test('secrets never show in String, JSON or inspect output of the config', () => {
    const config = extract({ password: SECRET }, { TC_CLIENT_SECRET: SECRET })
    expect(config.postgres.password?.reveal()).toBe(SECRET)
    expect(String(config.postgres.password)).toBe('[redacted]')
    expect(`${config.workspaceApi.clientSecret}`).toBe('[redacted]')
    for (const output of [JSON.stringify(config), Bun.inspect(config), Bun.inspect(config.postgres.password)]) {
      expect(output).toContain('[redacted]')
      expect(output).not.toContain(SECRET)
    }
  })

  test('secrets never show in log lines', () => {
    const lines: string[] = []
    const log = createLogger({ level: 'debug', format: 'json' }, { write: (line: string) => lines.push(line) })
    const config = extract({ password: SECRET })
    log.info('config', { config, token: secret(SECRET) })
    log.child({ password: secret(SECRET) }).warn('child')
    expect(lines).toHaveLength(2)
    for (const line of lines) expect(line).not.toContain(SECRET)
    const entry = JSON.parse(lines[0]!)
    expect(entry).toMatchObject({ level: 'info', msg: 'config', token: '[redacted]' })
    expect(entry.config.postgres.password).toBe('[redacted]')
    expect(Date.parse(entry.time)).not.toBeNaN()

    const pretty: string[] = []
    createLogger({ level: 'info', format: 'pretty' }, { write: (line: string) => pretty.push(line) }).info('config', {
      config,
    })
    expect(pretty.join('')).toContain('[redacted]')
    expect(pretty.join('')).not.toContain(SECRET)
  })
})

describe('logger', () => {
  test('json lines carry time, level, msg and fields; below the level nothing is written', () => {
    const lines: string[] = []
    const log = createLogger({ level: 'info', format: 'json' }, { write: (line: string) => lines.push(line) })
    log.debug('hidden')
    log.info('same')
    log.info('same')
    log.error('failed', { error: new Error('boom'), lsn: 42n, msg: 'not overriding' })
    expect(lines.map((line) => JSON.parse(line).msg)).toEqual(['same', 'same', 'failed'])
    expect(lines.every((line) => line.endsWith('\n') && !line.slice(0, -1).includes('\n'))).toBe(true)
    const failed = JSON.parse(lines[2]!)
    expect(failed).toMatchObject({ level: 'error', lsn: '42', error: { name: 'Error', message: 'boom' } })
    expect(failed.error.stack).toBeUndefined()
  })
})

describe('validation', () => {
  test('--db is required for extract-tasks', () => {
    expect(configError(() => parseExtractTasksConfig({}, {}, false))).toBe(
      '--db is required: the PostgreSQL database to stream from (or set TC_DB)',
    )
  })

  test('ports are integers from 1 to 65535', () => {
    expect(configError(() => extract({ pgPort: 'abc' }))).toBe('--pgPort must be an integer from 1 to 65535 (got "abc")')
    expect(configError(() => extract({ pgPort: '0' }))).toContain('--pgPort must be an integer from 1 to 65535')
    expect(configError(() => extract({ serverPort: '65536' }))).toBe(
      '--serverPort must be an integer from 1 to 65535 (got "65536")',
    )
    expect(configError(() => extract({ serverPort: '80.5' }))).toContain('--serverPort must be an integer')
    expect(extract({ serverPort: '65535' }).http.port).toBe(65535)
  })

  test('--mongo-addr is a mongodb:// or mongodb+srv:// URL, shown without its password', () => {
    expect(configError(() => extract({ 'mongo-addr': 'http://localhost' }))).toBe(
      '--mongo-addr must be a mongodb:// or mongodb+srv:// URL (got "http://localhost")',
    )
    const message = configError(() => startJob({ 'mongo-addr': `mongo://admin:${SECRET}@host` }))
    expect(message).toContain('"mongo://admin:***@host"')
    expect(message).not.toContain(SECRET)
    expect(startJob({ 'mongo-addr': 'mongodb://a:1,b:2/?replicaSet=rs0' }).mongo.url).toBe(
      'mongodb://a:1,b:2/?replicaSet=rs0',
    )
  })

  test('--oidc, --ws and --auth-issuer are http(s) URLs', () => {
    expect(configError(() => startJob({ oidc: 'sso.example/token' }))).toBe(
      '--oidc must be an http(s) URL (got "sso.example/token")',
    )
    expect(configError(() => startJob({ ws: 'ftp://ws.example' }))).toBe('--ws must be an http(s) URL (got "ftp://ws.example")')
    expect(configError(() => extract({ 'auth-issuer': 'issuer' }))).toBe('--auth-issuer must be an http(s) URL (got "issuer")')
  })

  test('--auth-audience needs --auth-issuer', () => {
    expect(configError(() => extract({ 'auth-audience': 'tc' }))).toStartWith('--auth-audience needs --auth-issuer')
    expect(extract({ 'auth-issuer': 'https://i.example', 'auth-audience': 'tc' }).auth).toEqual({
      issuer: 'https://i.example',
      audience: 'tc',
    })
  })

  test('--slot is a replication slot name', () => {
    expect(configError(() => extract({ slot: 'Task-Slot' }))).toBe(
      '--slot must be a replication slot name: 1 to 63 lower-case letters, digits or underscores (got "Task-Slot")',
    )
    expect(configError(() => extract({ slot: 'a'.repeat(64) }))).toContain('--slot must be a replication slot name')
    expect(extract({ slot: 'a'.repeat(63) }).slot).toBe('a'.repeat(63))
  })

  test('--schema is a plain identifier', () => {
    expect(configError(() => extract({ schema: 'public; drop table tasks' }))).toBe(
      '--schema must be a plain identifier: up to 63 lower-case letters, digits or underscores, ' +
        'not starting with a digit (got "public; drop table tasks")',
    )
    expect(configError(() => extract({ schema: '1abc' }))).toContain('--schema must be a plain identifier')
    expect(extract({ schema: '_app2' }).schema).toBe('_app2')
  })

  test('durations accept ms, s, m, h and a plain 0', () => {
    expect(extract({ 'status-interval': '500ms' }).statusIntervalMs).toBe(500)
    expect(extract({ 'status-interval': '2m' }).statusIntervalMs).toBe(120_000)
    expect(extract({ 'heartbeat-interval': '1h' }).heartbeatIntervalMs).toBe(3_600_000)
    expect(extract({ 'heartbeat-interval': '0' }).heartbeatIntervalMs).toBe(0)
    expect(configError(() => extract({ 'status-interval': '10' }))).toBe(
      '--status-interval must be a duration like 10s, 500ms, 2m or 1h (got "10")',
    )
    expect(configError(() => extract({ 'heartbeat-interval': '1.5s' }))).toContain('must be a duration')
    expect(configError(() => extract({ 'status-interval': '0' }))).toBe('--status-interval must be greater than 0')
    expect(configError(() => extract({ 'status-interval': '0s' }))).toBe('--status-interval must be greater than 0')
    expect(configError(() => extract({ 'heartbeat-interval': '25h' }))).toBe(
      '--heartbeat-interval must be at most 24h (got "25h")',
    )
  })

  test('--schedule is a cron expression that fires', () => {
    expect(startJob({ schedule: '0 */5 * * * *' }).schedule).toBe('0 */5 * * * *')
    expect(configError(() => startJob({ schedule: '61 * * * *' }))).toBe(
      '--schedule is not a cron expression (got "61 * * * *"): Invalid value for minute: 61',
    )
    expect(configError(() => startJob({ schedule: 'every hour' }))).toStartWith(
      '--schedule is not a cron expression (got "every hour")',
    )
    expect(configError(() => startJob({ schedule: '2030-01-01T00:00:00' }))).toStartWith('--schedule is not a cron expression')
    expect(configError(() => startJob({ schedule: '0 0 30 2 *' }))).toBe('--schedule never fires (got "0 0 30 2 *")')
  })

  test('--page-size is an integer from 1 to 500', () => {
    expect(startJob({ 'page-size': '1' }).pageSize).toBe(1)
    expect(configError(() => startJob({ 'page-size': '501' }))).toBe('--page-size must be an integer from 1 to 500 (got "501")')
    expect(configError(() => startJob({ 'page-size': '0' }))).toBe('--page-size must be an integer from 1 to 500 (got "0")')
  })

  test('--initial-load, --log-level and --log-format take one of their words', () => {
    expect(configError(() => extract({ 'initial-load': 'always' }))).toBe(
      '--initial-load must be one of auto, never (got "always")',
    )
    expect(configError(() => extract({ 'log-level': 'trace' }))).toBe(
      '--log-level must be one of debug, info, warn, error (got "trace")',
    )
    expect(configError(() => startJob({ 'log-format': 'text' }))).toBe('--log-format must be one of json, pretty (got "text")')
    expect(startJob({ 'log-level': 'warn' }).log.level).toBe('warn')
  })

  test('--max-stream-clients is a positive integer', () => {
    expect(extract({ 'max-stream-clients': '1' }).maxStreamClients).toBe(1)
    expect(configError(() => extract({ 'max-stream-clients': '0' }))).toBe(
      '--max-stream-clients must be a positive integer (got "0")',
    )
    expect(configError(() => extract({ 'max-stream-clients': '-3' }))).toContain('must be a positive integer')
  })

  test('--mongo-db and --topic are names their services accept', () => {
    expect(configError(() => startJob({ 'mongo-db': 'a.b' }))).toStartWith('--mongo-db must be a MongoDB database name')
    expect(configError(() => startJob({ topic: 'goog-tasks' }))).toStartWith('--topic must be a Pub/Sub topic id')
    expect(configError(() => startJob({ topic: 'ab' }))).toStartWith('--topic must be a Pub/Sub topic id')
  })
})
