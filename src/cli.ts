#!/usr/bin/env bun
// The tag-connector command line: extract-tasks, start-job, version, help.
// Exit status: 0 when a command returns, 2 on a usage or configuration error, 1 on any other
// failure; either failure is one line on stderr, "tag-connector: <message>" (plus the stack for
// non-usage failures under --log-level debug). Signals belong to the commands.

import { defineCommand, renderUsage, runCommand, type ArgsDef, type CommandDef } from 'citty'
import { ConfigError, parseExtractTasksConfig, parseStartJobConfig } from './config.ts'
import { EXTRACT_TASKS_FLAGS, START_JOB_FLAGS, type Flag } from './flags.ts'
import { createLogger } from './log.ts'
import { PROGRAM, VERSION, versionLine } from './version.ts'

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

const HELP_FLAGS = ['--help', '-h']
const VERSION_FLAGS = ['--version', '-v']
const END_OF_FLAGS = '--'
const ENV_NOTE =
  'Every flag can also come from the environment as TC_ and the flag in upper snake case ' +
  '(--pgHost: TC_PG_HOST, --mongo-addr: TC_MONGO_ADDR); a flag beats the environment.'

/** Shared with the running command so that a failure after parsing knows whether to show its stack. */
type RunState = { debug: boolean }

const extractTasksCommand = defineCommand({
  meta: {
    name: 'extract-tasks',
    description: 'Stream task and workspace changes from PostgreSQL to MongoDB, Pub/Sub and HTTP clients',
  },
  args: cittyArgs(EXTRACT_TASKS_FLAGS),
  async run({ args, data }) {
    const config = parseExtractTasksConfig(args, process.env)
    ;(data as RunState).debug = config.log.level === 'debug'
    const { extractTasks } = await import('./extract-tasks.ts')
    await extractTasks(config, createLogger(config.log))
  },
})

const startJobCommand = defineCommand({
  meta: { name: 'start-job', description: 'Snapshot the workspace API on a schedule and report drift to Pub/Sub' },
  args: cittyArgs(START_JOB_FLAGS),
  async run({ args, data }) {
    const config = parseStartJobConfig(args, process.env)
    ;(data as RunState).debug = config.log.level === 'debug'
    const { startJob } = await import('./snapshot/job.ts')
    await startJob(config, createLogger(config.log))
  },
})

const versionCommand = defineCommand({
  meta: { name: 'version', description: 'Print the version and exit' },
  run({ args }) {
    rejectArguments('version', args)
    console.log(versionLine())
  },
})

const helpCommand = defineCommand({
  meta: { name: 'help', description: 'Show help for tag-connector or one of its commands' },
  args: { command: { type: 'positional', required: false, description: 'the command to describe' } },
  async run({ args }) {
    const { command: name, _: rest, ...flags } = args
    rejectArguments('help', { _: rest.slice(1), ...flags })
    if (name === undefined) return printUsage(mainCommand)
    return printUsage(commandNamed(name), mainCommand)
  },
})

const COMMANDS: Record<string, CommandDef<any>> = {
  'extract-tasks': extractTasksCommand,
  'start-job': startJobCommand,
  version: versionCommand,
  help: helpCommand,
}
const COMMAND_FLAGS: Record<string, readonly Flag[]> = {
  'extract-tasks': EXTRACT_TASKS_FLAGS,
  'start-job': START_JOB_FLAGS,
}
const COMMANDS_WITH_FLAGS = new Set<CommandDef<any>>([extractTasksCommand, startJobCommand])

const mainCommand = defineCommand({
  meta: { name: PROGRAM, version: VERSION, description: 'Change-data capture of workspace tasks' },
  subCommands: COMMANDS,
})

/** Runs the command line (without the program name) and gives the exit status; never throws. */
export async function main(argv: readonly string[]): Promise<number> {
  const state: RunState = { debug: false }
  try {
    await dispatch(argv, state)
    return EXIT_OK
  } catch (error) {
    const failure = describeFailure(error, state.debug)
    for (const line of failure.lines) console.error(line)
    return failure.exitCode
  }
}

// Our own dispatch rather than citty's runMain: runMain prints the usage after every error and exits 1.
async function dispatch(argv: readonly string[], state: RunState): Promise<void> {
  const [name, ...rest] = argv
  if (name === undefined || HELP_FLAGS.includes(name)) return printUsage(mainCommand)
  if (VERSION_FLAGS.includes(name)) return console.log(versionLine())
  const command = commandNamed(name)
  if (wantsHelp(rest)) return printUsage(command, mainCommand)
  rejectMissingValues(rest, COMMAND_FLAGS[name] ?? [])
  await runCommand(command, { rawArgs: rest, data: state })
}

export type Failure = { lines: string[]; exitCode: number }

/** What to print for an error that ended the program, and the exit status it calls for. */
export function describeFailure(error: unknown, debug: boolean): Failure {
  const usage = error instanceof ConfigError || isCittyError(error)
  const message = error instanceof Error ? error.message || error.name : String(error)
  const lines = [`${PROGRAM}: ${oneLine(Bun.stripANSI(message))}`]
  if (!usage && debug && error instanceof Error && error.stack) lines.push(error.stack)
  return { lines, exitCode: usage ? EXIT_USAGE : EXIT_FAILURE }
}

function commandNamed(name: string): CommandDef<any> {
  const command = COMMANDS[name]
  if (command) return command
  const known = Object.keys(COMMANDS).join(', ')
  if (name.startsWith('-')) throw new ConfigError(`expected a command before ${name} (commands: ${known})`)
  throw new ConfigError(`unknown command ${JSON.stringify(name)} (commands: ${known})`)
}

// Defaults go into the description, not citty's `default`: citty would fill them into the parsed
// args, and a default there would beat the environment.
function cittyArgs(flags: readonly Flag[]): ArgsDef {
  return Object.fromEntries(
    flags.map((flag) => [
      flag.name,
      flag.kind === 'boolean'
        ? { type: 'boolean', description: flag.description }
        : {
            type: 'string',
            valueHint: flag.hint,
            description: flag.default === undefined ? flag.description : `${flag.description} (default: ${flag.default})`,
          },
    ]),
  )
}

function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf(END_OF_FLAGS)
  return (end === -1 ? args : args.slice(0, end)).some((arg) => HELP_FLAGS.includes(arg))
}

// citty (node:util parseArgs, non-strict) would take the next flag as the value, or "" at the end.
function rejectMissingValues(args: readonly string[], flags: readonly Flag[]): void {
  const takesValue = new Set(flags.filter((flag) => flag.kind === 'string').map((flag) => `--${flag.name}`))
  for (const [index, arg] of args.entries()) {
    if (arg === END_OF_FLAGS) return
    if (!takesValue.has(arg)) continue
    const next = args[index + 1]
    if (next === undefined || next.startsWith('--')) throw new ConfigError(`${arg} needs a value`)
  }
}

function rejectArguments(command: string, args: Record<string, unknown>): void {
  const { _: positionals, ...flags } = args
  const [flag] = Object.keys(flags)
  if (flag !== undefined) throw new ConfigError(`unknown flag --${flag} for ${command}`)
  const [extra] = Array.isArray(positionals) ? positionals : []
  if (extra !== undefined) throw new ConfigError(`unexpected argument ${JSON.stringify(extra)} for ${command}`)
}

async function printUsage(command: CommandDef<any>, parent?: CommandDef<any>): Promise<void> {
  const usage = await renderUsage(command, parent)
  // citty colours by its own rules (a pipe or a file gets plain text) and pads every column, the last one too.
  const text = (process.stdout.isTTY ? usage : Bun.stripANSI(usage)).replace(/[ \t]+$/gm, '').trimEnd()
  console.log(COMMANDS_WITH_FLAGS.has(command) ? `${text}\n\n${ENV_NOTE}` : text)
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

// citty's own errors (a CLIError with a code such as EARG) are usage errors.
function isCittyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'CLIError'
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)))
