// What a client of the Stream and the Snapshot keeps (contract section 5): rows by id, each with its
// `lastEventId`, moved by the events it reads under the contract's rule: an event not newer than a row's
// `lastEventId` is already in the row. Tests compare it with the tables.

import type { Document } from 'mongodb'
import type postgres from 'postgres'
import type { SseEvent } from './sse.ts'
import { tableDocuments } from './verify.ts'

export type Projection = { task: Map<string, Document>; workspace: Map<string, Document> }

/** A projection from a Snapshot's rows (JSON or NDJSON alike), or an empty one. */
export function projectionOf(snapshot: { workspaces: Document[]; tasks: Document[] } = { workspaces: [], tasks: [] }): Projection {
  return { task: new Map(snapshot.tasks.map((row) => [row.id, row])), workspace: new Map(snapshot.workspaces.map((row) => [row.id, row])) }
}

/** Applies the events in order; truncates empty their table. */
export function applyEvents(projection: Projection, events: SseEvent[]) {
  for (const { data: event } of events) {
    if (event.type === 'tasks.truncated' || event.type === 'workspaces.truncated') {
      projection[event.type === 'tasks.truncated' ? 'task' : 'workspace'].clear()
      continue
    }
    const entity = event.type.split('.')[0] as 'task' | 'workspace'
    const rows = projection[entity]
    const id = entity === 'task' ? event.taskId : event.workspaceId
    if (event.id <= (rows.get(id)?.lastEventId ?? '')) continue
    if (event.data) rows.set(id, { ...event.data, lastEventId: event.id })
    else rows.delete(id)
  }
}

/** A projection's rows as the tables' rows compare: by id, without `lastEventId` and a task's life cycle, which are the connector's. */
export const rowsById = (rows: Iterable<Document>) =>
  new Map([...rows].map(({ lastEventId: _, statusSince: _since, timeInStatus: _time, statusVisits: _visits, ...row }) => [row.id as string, row]))

/** A table's rows as the Snapshot must show them: JSON, by id. */
export async function tableRows(sql: postgres.Sql, table: 'tasks' | 'workspaces', workspace?: string): Promise<Map<string, Document>> {
  const rows = new Map<string, Document>()
  for (const [id, document] of await tableDocuments(sql, table))
    if (!workspace || (table === 'tasks' ? document.workspaceId : id) === workspace) rows.set(id, JSON.parse(JSON.stringify(document)))
  return rows
}
