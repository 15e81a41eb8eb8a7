// Turns the parsed command line and the environment into typed, validated configuration.
// Pure apart from reading secret files. Anything invalid throws a ConfigError whose message is one line
// naming the flag (or the TC_* variable it came from); secrets are wrapped so that printing or
// serializing a config never shows them.

import { readFileSync } from 'node:fs'
import { inspect } from 'node:util'
import { Cron, CronPattern, type CronMode } from 'croner'
import {
  EXTRACT_TASKS_FLAGS,
  type Flag,
  type InitialLoad,
  INITIAL_LOAD_MODES,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  MAX_PAGE_SIZE,
  START_JOB_FLAGS,
  envName,
} from './flags.ts'

// For the modules and tests that took the flag table from here before it had its own module.
export { EXTRACT_TASKS_FLAGS, START_JOB_FLAGS, envName, type Flag }

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export type Secret = { reveal(): string }
export type LogConfig = { level: LogLevel; format: LogFormat }
export type PostgresConfig = { host: string; port: number; database: string; user: string; password: Secret | null }
export type MongoConfig = { url: string; database: string }
export type PubSubConfig = { projectId: string; topic: string; serviceAccountFile: string; createTopic: boolean }
export type WorkspaceApiConfig = { tokenUrl: string; graphqlUrl: string; clientId: string; clientSecret: Secret | null }
export type ExtractTasksConfig = {
  postgres: PostgresConfig
  mongo: MongoConfig
  pubsub: PubSubConfig
  workspaceApi: WorkspaceApiConfig
  http: { host: string; port: number }
  slot: string
  schema: string
  initialLoad: InitialLoad
  statusIntervalMs: number
  heartbeatIntervalMs: number
  auth: { issuer: string | null; audience: string | null }
  maxStreamClients: number
  streamIdleTimeoutMs: number
  log: LogConfig
}
export type StartJobConfig = {
  mongo: MongoConfig
  pubsub: PubSubConfig
  workspaceApi: WorkspaceApiConfig
  schedule: string
  once: boolean
  pageSize: number
  log: LogConfig
}

/** citty's parsed args: flag name → value, `_` → positional arguments. */
export type Args = Record<string, unknown>
export type Env = Record<string, string | undefined>

const REDACTED = '[redacted]'
const MIN_PORT = 1
const MAX_PORT = 65535
const MAX_IDENTIFIER_LENGTH = 63 // PostgreSQL's NAMEDATALEN - 1
const MAX_MONGO_DB_NAME_LENGTH = 63
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const
const MAX_INTERVAL_MS = 24 * UNIT_MS.h
/** Five fields, or six with seconds first. */
export const CRON_MODE: CronMode = '5-or-6-parts'
const TRUE_WORDS = ['true', '1']
const FALSE_WORDS = ['false', '0']

const DURATION = /^(\d+)(ms|s|m|h)$/
const INTEGER = /^\d+$/
const SLOT_NAME = /^[a-z0-9_]+$/
const PLAIN_IDENTIFIER = /^[a-z_][a-z0-9_]*$/
const MONGO_URL = /^mongodb(\+srv)?:\/\/[^\s]+$/
const MONGO_DB_NAME = /^[^/\\. "$*<>:|?\0]+$/
// Pub/Sub's rule for topic ids (https://cloud.google.com/pubsub/docs/create-topic#resource_names).
const PUBSUB_TOPIC = /^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/



/** A secret value that prints, serializes and inspects as "[redacted]"; only reveal() gives it out. */
export function secret(value: string): Secret {
  return Object.freeze({
    reveal: () => value,
    toString: () => REDACTED,
    toJSON: () => REDACTED,
    [inspect.custom]: () => REDACTED,
  })
}

export function parseExtractTasksConfig(
  args: Args,
  env: Env,
  stdoutIsTTY: boolean = Boolean(process.stdout.isTTY),
): ExtractTasksConfig {
  const input = createInput('extract-tasks', EXTRACT_TASKS_FLAGS, args, env)
  const issuer = optional(input, 'auth-issuer', httpUrl)
  const audience = optional(input, 'auth-audience', (setting) => setting.value)
  if (audience !== null && issuer === null) {
    throw new ConfigError(`${input.label('auth-audience')} needs --auth-issuer: an audience alone checks nothing`)
  }
  return {
    postgres: {
      host: input.value('pgHost').value,
      port: port(input.value('pgPort')),
      database: required(input, 'db', 'the PostgreSQL database to stream from').value,
      user: input.value('user').value,
      password: secretOf(input, 'password', 'password-file'),
    },
    mongo: mongoConfig(input),
    pubsub: pubSubConfig(input),
    workspaceApi: workspaceApiConfig(input),
    http: { host: input.value('serverHost').value, port: port(input.value('serverPort')) },
    slot: slotName(input.value('slot')),
    schema: plainIdentifier(input.value('schema')),
    initialLoad: oneOf(input.value('initial-load'), INITIAL_LOAD_MODES),
    statusIntervalMs: duration(input.value('status-interval'), { zeroDisables: false }),
    heartbeatIntervalMs: duration(input.value('heartbeat-interval'), { zeroDisables: true }),
    auth: { issuer, audience },
    maxStreamClients: integerAtLeast(input.value('max-stream-clients'), 1, 'a positive integer'),
    streamIdleTimeoutMs: duration(input.value('stream-idle-timeout'), { zeroDisables: false }),
    log: logConfig(input, stdoutIsTTY),
  }
}

export function parseStartJobConfig(
  args: Args,
  env: Env,
  stdoutIsTTY: boolean = Boolean(process.stdout.isTTY),
): StartJobConfig {
  const input = createInput('start-job', START_JOB_FLAGS, args, env)
  return {
    mongo: mongoConfig(input),
    pubsub: pubSubConfig(input),
    workspaceApi: workspaceApiConfig(input),
    schedule: cronExpression(input.value('schedule')),
    once: input.toggle('once'),
    pageSize: integerIn(input.value('page-size'), 1, MAX_PAGE_SIZE),
    log: logConfig(input, stdoutIsTTY),
  }
}

/** A value and how to name it in an error: `--pgPort`, or `TC_PG_PORT` when it came from there. */
type Setting = { value: string; label: string }

type Input = {
  /** From the flag, else the environment; null when neither is set. */
  given(name: string): (Setting & { from: 'flag' | 'env' }) | null
  /** From the flag, else the environment, else the flag's default; null when none applies. */
  get(name: string): Setting | null
  /** Like get, for flags that have a default. */
  value(name: string): Setting
  toggle(name: string): boolean
  label(name: string): string
}

function createInput(command: string, flags: readonly Flag[], args: Args, env: Env): Input {
  const byName = new Map(flags.map((flag) => [flag.name, flag]))
  rejectStrayArguments(command, flags, args)

  const flagOf = (name: string): Flag => {
    const flag = byName.get(name)
    if (!flag) throw new Error(`${command} has no flag --${name}`)
    return flag
  }

  const given: Input['given'] = (name) => {
    const flag = flagOf(name)
    const fromArgs = args[name]
    if (fromArgs !== undefined) {
      if (flag.kind === 'string' && (typeof fromArgs !== 'string' || fromArgs === '')) {
        throw new ConfigError(`--${name} needs a value`)
      }
      return { value: String(fromArgs), label: `--${name}`, from: 'flag' }
    }
    const variable = envName(name)
    const fromEnv = env[variable]
    // An empty variable counts as unset, the way shells and unit files use it.
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, label: variable, from: 'env' }
    return null
  }

  const get: Input['get'] = (name) => {
    const setting = given(name)
    if (setting) return setting
    const fallback = flagOf(name).default
    return fallback === undefined ? null : { value: fallback, label: `--${name}` }
  }

  return {
    given,
    get,
    value(name) {
      const setting = get(name)
      if (!setting) throw new Error(`--${name} has no default`)
      return setting
    },
    toggle(name) {
      const setting = given(name)
      if (!setting) return false
      const word = setting.value.toLowerCase()
      if (TRUE_WORDS.includes(word)) return true
      if (FALSE_WORDS.includes(word)) return false
      throw new ConfigError(`${setting.label} must be true, false, 1 or 0 (got ${quote(setting.value)})`)
    },
    label: (name) => given(name)?.label ?? `--${name}`,
  }
}

// citty accepts any flag and collects bare words; only the command's own flags make sense.
function rejectStrayArguments(command: string, flags: readonly Flag[], args: Args): void {
  const known = new Set(flags.flatMap((flag) => spellingsOf(flag.name)))
  for (const key of Object.keys(args)) {
    if (key === '_' || known.has(key)) continue
    const flag = (key.length === 1 ? '-' : '--') + key
    throw new ConfigError(`unknown flag ${flag} for ${command} (see tag-connector ${command} --help)`)
  }
  const positionals = Array.isArray(args._) ? args._ : []
  if (positionals.length > 0) {
    throw new ConfigError(`unexpected argument ${quote(String(positionals[0]))} for ${command}`)
  }
}

// citty stores each flag under its camelCase and kebab-case spellings as well.
function spellingsOf(name: string): string[] {
  const camel = name.replace(/-([a-z0-9])/g, (_, letter: string) => letter.toUpperCase())
  const kebab = name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)
  return [name, camel, kebab]
}

function required(input: Input, name: string, what: string): Setting {
  const setting = input.get(name)
  if (!setting) throw new ConfigError(`--${name} is required: ${what} (or set ${envName(name)})`)
  return setting
}

function optional<T>(input: Input, name: string, parse: (setting: Setting) => T): T | null {
  const setting = input.get(name)
  return setting ? parse(setting) : null
}

function mongoConfig(input: Input): MongoConfig {
  return { url: mongoUrl(input.value('mongo-addr')), database: mongoDatabase(input.value('mongo-db')) }
}

function pubSubConfig(input: Input): PubSubConfig {
  return {
    projectId: input.value('project-id').value,
    topic: pubSubTopic(input.value('topic')),
    serviceAccountFile: input.value('service-account').value,
    createTopic: input.toggle('create-topic'),
  }
}

function workspaceApiConfig(input: Input): WorkspaceApiConfig {
  return {
    tokenUrl: httpUrl(input.value('oidc')),
    graphqlUrl: httpUrl(input.value('ws')),
    clientId: input.value('client-id').value,
    clientSecret: secretOf(input, 'client-secret', 'client-secret-file'),
  }
}

function logConfig(input: Input, stdoutIsTTY: boolean): LogConfig {
  const format = input.get('log-format')
  return {
    level: oneOf(input.value('log-level'), LOG_LEVELS),
    format: format ? oneOf(format, LOG_FORMATS) : stdoutIsTTY ? 'pretty' : 'json',
  }
}

// The value or the file, whichever was given; flags outrank the environment as a pair, so
// `--password` on the command line wins over a TC_PASSWORD_FILE left in the environment.
function secretOf(input: Input, valueName: string, fileName: string): Secret | null {
  let value = input.given(valueName)
  let file = input.given(fileName)
  if (value?.from === 'flag' && file?.from === 'env') file = null
  if (file?.from === 'flag' && value?.from === 'env') value = null
  if (value && file) throw new ConfigError(`give either ${value.label} or ${file.label}, not both`)
  if (value) return secret(value.value)
  if (file) return secret(readSecretFile(file))
  return null
}

function readSecretFile(file: Setting): string {
  let content: string
  try {
    content = readFileSync(file.value, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable'
    throw new ConfigError(`cannot read ${file.label} ${quote(file.value)} (${code})`)
  }
  const trimmed = content.replace(/[\r\n]+$/, '')
  if (trimmed === '') throw new ConfigError(`${file.label} ${quote(file.value)} is empty`)
  return trimmed
}

function port(setting: Setting): number {
  return integerIn(setting, MIN_PORT, MAX_PORT)
}

function integerIn(setting: Setting, min: number, max: number): number {
  const number = INTEGER.test(setting.value) ? Number(setting.value) : NaN
  if (!(number >= min && number <= max)) {
    throw new ConfigError(`${setting.label} must be an integer from ${min} to ${max} (got ${quote(setting.value)})`)
  }
  return number
}

function integerAtLeast(setting: Setting, min: number, what: string): number {
  const number = INTEGER.test(setting.value) ? Number(setting.value) : NaN
  if (!(Number.isSafeInteger(number) && number >= min)) {
    throw new ConfigError(`${setting.label} must be ${what} (got ${quote(setting.value)})`)
  }
  return number
}

function oneOf<T extends string>(setting: Setting, choices: readonly T[]): T {
  const choice = choices.find((candidate) => candidate === setting.value)
  if (choice === undefined) {
    throw new ConfigError(`${setting.label} must be one of ${choices.join(', ')} (got ${quote(setting.value)})`)
  }
  return choice
}

function duration(setting: Setting, { zeroDisables }: { zeroDisables: boolean }): number {
  const match = setting.value === '0' ? ['0', '0', 'ms'] : DURATION.exec(setting.value)
  if (!match) {
    throw new ConfigError(`${setting.label} must be a duration like 10s, 500ms, 2m or 1h (got ${quote(setting.value)})`)
  }
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]
  if (ms === 0 && !zeroDisables) throw new ConfigError(`${setting.label} must be greater than 0`)
  if (ms > MAX_INTERVAL_MS) throw new ConfigError(`${setting.label} must be at most 24h (got ${quote(setting.value)})`)
  return ms
}

function httpUrl(setting: Setting): string {
  const url = URL.parse(setting.value)
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new ConfigError(`${setting.label} must be an http(s) URL (got ${quote(withoutPassword(setting.value))})`)
  }
  return setting.value
}

function mongoUrl(setting: Setting): string {
  if (!MONGO_URL.test(setting.value)) {
    throw new ConfigError(
      `${setting.label} must be a mongodb:// or mongodb+srv:// URL (got ${quote(withoutPassword(setting.value))})`,
    )
  }
  return setting.value
}

function mongoDatabase(setting: Setting): string {
  if (!MONGO_DB_NAME.test(setting.value) || setting.value.length > MAX_MONGO_DB_NAME_LENGTH) {
    throw new ConfigError(
      `${setting.label} must be a MongoDB database name: at most ${MAX_MONGO_DB_NAME_LENGTH} characters, ` +
        `none of / \\ . " $ * < > : | ? or space (got ${quote(setting.value)})`,
    )
  }
  return setting.value
}

function pubSubTopic(setting: Setting): string {
  if (!PUBSUB_TOPIC.test(setting.value) || setting.value.startsWith('goog')) {
    throw new ConfigError(
      `${setting.label} must be a Pub/Sub topic id: 3 to 255 letters, digits or - _ . ~ + %, ` +
        `starting with a letter and not with "goog" (got ${quote(setting.value)})`,
    )
  }
  return setting.value
}

function slotName(setting: Setting): string {
  if (!SLOT_NAME.test(setting.value) || setting.value.length > MAX_IDENTIFIER_LENGTH) {
    throw new ConfigError(
      `${setting.label} must be a replication slot name: 1 to ${MAX_IDENTIFIER_LENGTH} lower-case letters, ` +
        `digits or underscores (got ${quote(setting.value)})`,
    )
  }
  return setting.value
}

// Lower case only: the name is used unquoted in SQL and as wal2json's add-tables filter, which
// compare it as stored, so it must be the form PostgreSQL folds an unquoted name to.
function plainIdentifier(setting: Setting): string {
  if (!PLAIN_IDENTIFIER.test(setting.value) || setting.value.length > MAX_IDENTIFIER_LENGTH) {
    throw new ConfigError(
      `${setting.label} must be a plain identifier: up to ${MAX_IDENTIFIER_LENGTH} lower-case letters, ` +
        `digits or underscores, not starting with a digit (got ${quote(setting.value)})`,
    )
  }
  return setting.value
}

// CronPattern, unlike Cron, refuses a date ("2030-01-01T00:00") that would run only once.
function cronExpression(setting: Setting): string {
  try {
    new CronPattern(setting.value, undefined, { mode: CRON_MODE })
  } catch (error) {
    const reason = String((error as Error).message).replace(/^CronPattern:\s*/, '')
    throw new ConfigError(`${setting.label} is not a cron expression (got ${quote(setting.value)}): ${reason}`)
  }
  const job = new Cron(setting.value, { paused: true, mode: CRON_MODE })
  const next = job.nextRun()
  job.stop()
  if (next === null) throw new ConfigError(`${setting.label} never fires (got ${quote(setting.value)})`)
  return setting.value
}

// Connection strings may carry credentials; error messages show them masked.
function withoutPassword(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')
}

function quote(value: string): string {
  return JSON.stringify(value)
}
