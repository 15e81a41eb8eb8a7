// Structured logging on consola. JSON format: one object per line on stderr,
// {"time","level","msg", ...fields}; pretty format: consola's own reporter, also on stderr.
// A logger never throws, and secrets reach the output only as "[redacted]" (Secret serializes so).

import { createConsola, type ConsolaInstance, type ConsolaReporter } from 'consola'
import type { LogConfig } from './config.ts'

export type LogFields = Record<string, unknown>

export type Logger = {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  /** A logger that adds these fields to every entry, e.g. `log.child({ component: 'replication' })`. */
  child(fields: LogFields): Logger
}

/** Where log lines go; process.stderr unless a test captures them. */
export type LogOutput = { write(chunk: string): unknown }

type Level = LogConfig['level']

// consola's numeric levels (LogLevels in consola): an entry shows when its level ≤ the instance's.
const CONSOLA_LEVEL: Record<Level, number> = { error: 0, warn: 1, info: 3, debug: 4 }
const RESERVED_KEYS = new Set(['time', 'level', 'msg'])

export function createLogger(config: LogConfig, output: LogOutput = process.stderr): Logger {
  // consola only calls write() on its streams (and reads columns, when present).
  const stream = output as NodeJS.WriteStream
  const consola = createConsola({
    level: CONSOLA_LEVEL[config.level],
    // consola folds identical entries within a second into "(repeated n times)"; a daemon's log keeps each.
    throttle: 0,
    stdout: stream,
    stderr: stream,
    formatOptions: { date: true },
    ...(config.format === 'json' ? { reporters: [jsonReporter(output, config.level === 'debug')] } : {}),
  })
  return bind(consola, {})
}

function bind(consola: ConsolaInstance, bound: LogFields): Logger {
  const at =
    (level: Level) =>
    (msg: string, fields?: LogFields): void => {
      const all = { ...bound, ...fields }
      if (Object.keys(all).length === 0) consola[level](msg)
      else consola[level](msg, all)
    }
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (fields) => bind(consola, { ...bound, ...fields }),
  }
}

function jsonReporter(output: LogOutput, withStacks: boolean): ConsolaReporter {
  return {
    log(entry) {
      const [msg, fields] = entry.args as [unknown, LogFields | undefined]
      const line: Record<string, unknown> = { time: entry.date.toISOString(), level: entry.type, msg: String(msg) }
      for (const [key, value] of Object.entries(fields ?? {})) {
        if (!RESERVED_KEYS.has(key)) line[key] = value
      }
      output.write(serialize(line, withStacks) + '\n')
    },
  }
}

function serialize(line: Record<string, unknown>, withStacks: boolean): string {
  // toJSON runs before the replacer, so Secret values are already "[redacted]" here.
  const replacer = (_key: string, value: unknown): unknown => {
    if (typeof value === 'bigint') return value.toString()
    if (value instanceof Error) return errorFields(value, withStacks)
    return value
  }
  try {
    return JSON.stringify(line, replacer)
  } catch (error) {
    const { time, level, msg } = line
    return JSON.stringify({ time, level, msg, logError: `fields not serializable: ${(error as Error).message}` })
  }
}

function errorFields(error: Error, withStack: boolean): LogFields {
  const code = (error as NodeJS.ErrnoException).code
  return {
    name: error.name,
    message: error.message,
    ...(code === undefined ? {} : { code }),
    ...(withStack && error.stack ? { stack: error.stack } : {}),
  }
}

/** An error as one line for the log: its message's first line, with its code where the message lacks it. */
export function errorLine(error: unknown): string {
  const { message, code } = (error ?? {}) as { message?: string; code?: unknown }
  const text = (message || String(error)).split('\n')[0]!
  return code !== undefined && !text.includes(String(code)) ? `${text} [${code}]` : text
}
