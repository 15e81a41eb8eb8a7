// The command line's flags: every flag of extract-tasks and start-job, its value hint, description and
// default (contract section 6), and the TC_* variable each can come from. Data only: config.ts validates.

/** One command-line flag. `default` is what applies when neither the flag nor its TC_* variable is set. */
export type Flag = { name: string; kind: 'string' | 'boolean'; hint?: string; description: string; default?: string }

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export const LOG_FORMATS = ['json', 'pretty'] as const
export const INITIAL_LOAD_MODES = ['auto', 'never'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
export type LogFormat = (typeof LOG_FORMATS)[number]
export type InitialLoad = (typeof INITIAL_LOAD_MODES)[number]

const ENV_PREFIX = 'TC_'
/** The workspace API's limit for `first` (workspace-api.graphql). */
export const MAX_PAGE_SIZE = 500

const text = (name: string, hint: string, description: string, defaultValue?: string): Flag => ({
  name,
  kind: 'string',
  hint,
  description,
  ...(defaultValue === undefined ? {} : { default: defaultValue }),
})
const toggle = (name: string, description: string): Flag => ({ name, kind: 'boolean', description })

const POSTGRES_FLAGS: Flag[] = [
  text('db', 'name', 'PostgreSQL database to stream from (required)'),
  text('pgHost', 'host', 'PostgreSQL host', 'localhost'),
  text('pgPort', 'port', 'PostgreSQL port', '5432'),
  text('user', 'name', 'PostgreSQL user (needs the REPLICATION attribute)', 'postgres'),
  text('password', 'secret', 'PostgreSQL password'),
  text('password-file', 'file', 'file holding the PostgreSQL password'),
]
const HTTP_FLAGS: Flag[] = [
  text('serverHost', 'host', 'HTTP listen address', '0.0.0.0'),
  text('serverPort', 'port', 'HTTP listen port', '8080'),
]
const MONGO_FLAGS: Flag[] = [
  text('mongo-addr', 'url', 'MongoDB connection string', 'mongodb://localhost:27017'),
  text('mongo-db', 'name', 'MongoDB database', 'task_connector'),
]
const PUBSUB_FLAGS: Flag[] = [
  text('project-id', 'id', 'Google Cloud project of the topic', 'target-datalake-ng'),
  text('topic', 'name', 'Pub/Sub topic', 'taskTopic'),
  text(
    'service-account',
    'file',
    'service-account key file; application-default credentials when it does not exist',
    './service-account-file.json',
  ),
  toggle('create-topic', 'create the topic when it is missing'),
]
const WORKSPACE_API_FLAGS: Flag[] = [
  text('oidc', 'url', 'OAuth2 token endpoint of the workspace API', 'https://sso.test.meeraspace.com/token'),
  text('ws', 'url', 'workspace GraphQL endpoint', 'https://test.meeraspace.com/graphql'),
  text('client-id', 'id', 'OAuth2 client id', 'nz-mdr'),
  text('client-secret', 'secret', 'OAuth2 client secret'),
  text('client-secret-file', 'file', 'file holding the OAuth2 client secret'),
]
const REPLICATION_FLAGS: Flag[] = [
  text('slot', 'name', 'logical replication slot', 'task_connector'),
  text('schema', 'name', 'schema of the tracked tables', 'public'),
  text('initial-load', 'auto|never', 'load the existing rows when the slot is created (auto) or not (never)', 'auto'),
  text('status-interval', 'duration', 'standby status update interval', '10s'),
  text('heartbeat-interval', 'duration', 'heartbeat message interval, 0 to disable', '15s'),
]
const API_FLAGS: Flag[] = [
  text('auth-issuer', 'url', 'require bearer JWTs from this issuer on /v1/api/*'),
  text('auth-audience', 'audience', 'required JWT audience (with --auth-issuer)'),
  text('max-stream-clients', 'count', 'concurrent SSE clients', '1000'),
  text('stream-idle-timeout', 'duration', 'disconnect a Stream client that has read nothing for this long', '60s'),
]
const SCHEDULE_FLAGS: Flag[] = [
  text('schedule', 'cron', "cron expression of the snapshot runs, in the host's time zone (or TZ)", '*/30 * * * *'),
  toggle('once', 'run one snapshot and exit'),
  text('page-size', 'count', `GraphQL page size, at most ${MAX_PAGE_SIZE}`, '200'),
]
const LOG_FLAGS: Flag[] = [
  text('log-level', LOG_LEVELS.join('|'), 'log level', 'info'),
  text('log-format', LOG_FORMATS.join('|'), 'log format (default: json when stdout is not a terminal, else pretty)'),
]

// extract-tasks takes the workspace-API flags only so that the original service's unit files keep working.
const UNUSED_BY_EXTRACT_TASKS = ' (accepted for compatibility; unused)'

export const EXTRACT_TASKS_FLAGS: readonly Flag[] = [
  ...POSTGRES_FLAGS,
  ...HTTP_FLAGS,
  ...MONGO_FLAGS,
  ...PUBSUB_FLAGS,
  ...WORKSPACE_API_FLAGS.map((flag) => ({ ...flag, description: flag.description + UNUSED_BY_EXTRACT_TASKS })),
  ...REPLICATION_FLAGS,
  ...API_FLAGS,
  ...LOG_FLAGS,
]

export const START_JOB_FLAGS: readonly Flag[] = [
  ...MONGO_FLAGS,
  ...PUBSUB_FLAGS,
  ...WORKSPACE_API_FLAGS,
  ...SCHEDULE_FLAGS,
  ...LOG_FLAGS,
]

/** `--pgHost` → `TC_PG_HOST`, `--mongo-addr` → `TC_MONGO_ADDR`. */
export function envName(flag: string): string {
  return ENV_PREFIX + flag.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replaceAll('-', '_').toUpperCase()
}
