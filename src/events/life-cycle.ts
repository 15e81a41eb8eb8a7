// A task's life cycle (contract sections 2 and 4): how long it spent in each status. Owns the transition's
// `fromSince`/`inFromMs` and the document's `statusSince`/`timeInStatus`/`statusVisits`, each computed from the
// row's last life cycle and the event alone. Guarantees: measured on commit times only (never a clock of ours),
// and pure, so the same state and event give the same figures: a replay, a restart or a backlog changes nothing;
// `statusSince` is set exactly while a visit is open, one whose length `timeInStatus` does not hold yet.

import type { EventRow, TaskEvent, Transition } from './events.ts'

/** The task's life cycle so far: when it entered its status (null: unknown), finished visits' ms and entries per status. */
export type LifeCycle = { statusSince: string | null; timeInStatus: Record<string, number>; statusVisits: Record<string, number> }

/** What a task event leaves of the life cycle, for the row it writes. Keyed by a symbol: JSON and BSON leave it out. */
export const LIFE_CYCLE = Symbol('life cycle')
export type WithLifeCycle = { [LIFE_CYCLE]?: LifeCycle }

/** A task the connector first sees in a status it already had: when it entered it, and everything before, is unknown. */
export const UNKNOWN_LIFE_CYCLE: LifeCycle = Object.freeze({ statusSince: null, timeInStatus: Object.freeze({}), statusVisits: Object.freeze({}) })

/** The row's state before an event, as far as the life cycle needs it: its data (null when unknown or deleted) and life cycle. */
export type KnownTask = { row: EventRow | null; lifeCycle: LifeCycle | null }

/**
 * The task's life cycle after `event`, given what was known before it. A fresh event (`timed`) gets its
 * transition's `fromSince`/`inFromMs` here; an event republished as stored keeps its own.
 */
export function stepLifeCycle(event: TaskEvent & WithLifeCycle, before: KnownTask, timed: boolean): LifeCycle {
  const known = before.row ? before.lifeCycle : null
  const transition = event.transition
  let after: LifeCycle
  if (event.type === 'task.created') after = { statusSince: event.commitTime, timeInStatus: {}, statusVisits: transition?.to ? { [transition.to]: 1 } : {} }
  else if (transition && event.source === 'cdc') after = closeVisit(transition, known, event.commitTime, timed)
  // A reload that finds the task in another status: when it got there is unknown; its totals stay.
  else if (event.type === 'task.snapshot' && known && before.row!.status !== event.data?.status)
    after = { ...known, statusSince: null }
  // Anything else keeps what was known: an update that leaves the status alone, or a reload's deletion of a
  // vanished row (source `initial`), which carries no timing: when the row went is unknown, so its last visit
  // stays open and uncounted, as a truncate's do.
  else after = known ?? UNKNOWN_LIFE_CYCLE
  event[LIFE_CYCLE] = after
  return after
}

/** A streamed change of status: the visit of `from` ends at this commit, and one of `to` begins (none for a deletion). */
function closeVisit(transition: Transition, known: LifeCycle | null, commitTime: string, timed: boolean): LifeCycle {
  const fromSince = known?.statusSince ?? null
  const inFromMs = fromSince === null ? null : Date.parse(commitTime) - Date.parse(fromSince)
  if (timed) Object.assign(transition, { fromSince, inFromMs })
  const base = known ?? UNKNOWN_LIFE_CYCLE
  const timeInStatus = inFromMs === null ? base.timeInStatus : added(base.timeInStatus, transition.from!, inFromMs)
  if (transition.to === null) return { statusSince: null, timeInStatus, statusVisits: base.statusVisits }
  return { statusSince: commitTime, timeInStatus, statusVisits: added(base.statusVisits, transition.to, 1) }
}

function added(counts: Record<string, number>, key: string, amount: number): Record<string, number> {
  return { ...counts, [key]: (counts[key] ?? 0) + amount }
}

/** The finished visit an event reports, when its length is known: for the status-time metric. */
export function finishedVisit(event: TaskEvent): { status: string; ms: number } | null {
  const transition = event.transition
  return transition?.from && typeof transition.inFromMs === 'number' ? { status: transition.from, ms: transition.inFromMs } : null
}

const MINUTE_MS = 60_000
const HOUR_MS = 60 * MINUTE_MS
const DAY_MS = 24 * HOUR_MS

/** A transition for a person: `todo → in_progress after 12.4 s in todo` (creation and deletion show ∅). */
export function describeTransition(transition: Transition): string {
  const moved = `${transition.from ?? '∅'} → ${transition.to ?? '∅'}`
  return typeof transition.inFromMs === 'number' ? `${moved} after ${describeDuration(transition.inFromMs)} in ${transition.from}` : moved
}

export function describeDuration(ms: number): string {
  if (ms < MINUTE_MS) return `${(ms / 1000).toFixed(1)} s`
  if (ms < HOUR_MS) return `${(ms / MINUTE_MS).toFixed(1)} min`
  if (ms < DAY_MS) return `${(ms / HOUR_MS).toFixed(1)} h`
  return `${(ms / DAY_MS).toFixed(1)} d`
}
