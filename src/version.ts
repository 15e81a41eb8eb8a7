// Which build this is: the package version, the git commit it was built from, and the Bun runtime.
// A compiled binary gets its commit from `bun build --define TC_BUILD_COMMIT='"<sha>"'`; run from
// source it asks git, and says "unknown" when it cannot tell.

import packageJson from '../package.json' with { type: 'json' }

declare const TC_BUILD_COMMIT: string | undefined

export const PROGRAM = 'tag-connector'
export const VERSION: string = packageJson.version

const UNKNOWN_COMMIT = 'unknown'

export type BuildInfo = { name: string; version: string; commit: string; bun: string }

let commit: string | undefined

export function buildCommit(): string {
  commit ??= typeof TC_BUILD_COMMIT === 'string' && TC_BUILD_COMMIT !== '' ? TC_BUILD_COMMIT : gitCommit()
  return commit
}

export function buildInfo(): BuildInfo {
  return { name: PROGRAM, version: VERSION, commit: buildCommit(), bun: Bun.version }
}

/** `tag-connector 0.1.0 (commit 2a3955f, bun 1.4.5)` */
export function versionLine(info: BuildInfo = buildInfo()): string {
  return `${info.name} ${info.version} (commit ${info.commit}, bun ${info.bun})`
}

// Asks in this file's directory, so it reports the checkout the code runs from, not the caller's
// working directory; inside a compiled binary that directory does not exist and git fails.
function gitCommit(): string {
  try {
    const git = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], {
      cwd: import.meta.dir,
      stdout: 'pipe',
      stderr: 'ignore',
    })
    const sha = git.stdout.toString().trim()
    return git.success && sha !== '' ? sha : UNKNOWN_COMMIT
  } catch {
    return UNKNOWN_COMMIT
  }
}
