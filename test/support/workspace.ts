// Workspace rows for tests and benchmarks, written with plain SQL through postgres.js.

import type postgres from 'postgres'

export const STATUSES = ['todo', 'in_progress', 'blocked', 'done', 'cancelled'] as const

export async function createWorkspace(sql: postgres.Sql, name = 'workspace'): Promise<string> {
  const [row] = await sql`insert into workspaces (id, name) values (gen_random_uuid(), ${name}) returning id`
  return row!.id
}

/** Inserts `count` tasks in one statement, server-side, and returns nothing: for volume, not for ids. */
export async function insertTasks(sql: postgres.Sql | postgres.TransactionSql, workspaceId: string, count: number, title = 'task') {
  await sql`
    insert into tasks (id, workspace_id, title, status, priority, labels, metadata)
    select gen_random_uuid(), ${workspaceId}, ${title} || ' ' || g, (array['todo','in_progress','blocked','done'])[1 + g % 4],
           g % 5, array['label-' || (g % 7)], jsonb_build_object('n', g)
    from generate_series(1, ${count}::int) g`
}

export async function createTask(sql: postgres.Sql, workspaceId: string, fields: Record<string, unknown> = {}): Promise<string> {
  const row = { id: crypto.randomUUID(), workspace_id: workspaceId, title: 'a task', ...fields }
  await sql`insert into tasks ${sql(row)}`
  return row.id
}

/** Random text of 20 kB: it compresses too little to stay in the row, so PostgreSQL moves it to TOAST. */
export const largeText = () => Array.from({ length: 20_000 / 32 }, () => crypto.randomUUID().replaceAll('-', '')).join('')
