// bench:replication's workloads. The main one: a deterministic mix of inserts, updates and deletes on workspaces
// and tasks, in transactions of 1 to 10,000 rows (mostly small, some large), planned here from a seed and written
// server-side by one procedure that commits after each planned transaction, so writing it costs no client round
// trips. The TOAST phase's: single-row updates of `priority` over a set of tasks, sent one after the other.

import type postgres from 'postgres'
import { mulberry32 } from '../../test/support/verify.ts'
import { createWorkspace } from '../../test/support/workspace.ts'

export const MAX_TRANSACTION_ROWS = 10_000

// One planned transaction, in the order the procedure applies it.
export type PlannedTransaction = {
  workspaceInserts: number
  workspaceUpdates: number
  /** First workspace number updated (0 is the base workspace). */
  workspaceUpdateFrom: number
  taskInserts: number
  taskUpdates: number
  /** First task number updated; tasks are numbered from 1 in insertion order and deleted oldest first. */
  taskUpdateFrom: number
  taskDeletes: number
}

export type Plan = { transactions: PlannedTransaction[]; changes: number; largest: number }

/**
 * Transactions until at least `minChanges` row changes: 97 % of 1–10 rows, 2.5 % of 11 to a tenth of `maxRows`,
 * 0.5 % up to `maxRows` (10,000 by default), and one of exactly `maxRows`. A small transaction does one kind of
 * change; a larger one inserts, updates and deletes tasks in random proportions.
 */
export function planWorkload(minChanges: number, { maxRows = MAX_TRANSACTION_ROWS, seed = 20240611 } = {}): Plan {
  const random = mulberry32(seed)
  const between = (low: number, high: number) => low + Math.floor(random() * (high - low + 1))
  const transactions: PlannedTransaction[] = []
  let changes = 0
  let largest = 0
  let workspaces = 1 // the base workspace, number 0, exists before the workload
  let oldestTask = 1 // tasks oldestTask..newestTask are live
  let newestTask = 0

  while (changes < minChanges) {
    const pick = random()
    const rows =
      transactions.length === 100 ? maxRows
      : pick < 0.97 ? between(1, 10)
      : pick < 0.995 ? between(11, maxRows / 10)
      : between(maxRows / 10 + 1, maxRows)
    const live = newestTask - oldestTask + 1
    const txn: PlannedTransaction = {
      workspaceInserts: 0, workspaceUpdates: 0, workspaceUpdateFrom: 0, taskInserts: 0, taskUpdates: 0, taskUpdateFrom: 0, taskDeletes: 0,
    }
    if (rows <= 10) {
      const kind = random()
      if (kind < 0.05) txn.workspaceInserts = rows
      else if (kind < 0.1 && workspaces >= rows) txn.workspaceUpdates = rows
      else if (kind < 0.4 && live >= rows) txn.taskUpdates = rows
      else if (kind < 0.55 && live >= rows) txn.taskDeletes = rows
      else txn.taskInserts = rows
    } else {
      // Deletes and updates take live rows only; what they cannot take is inserted.
      txn.taskDeletes = Math.min(Math.floor(rows * random() * 0.3), live)
      txn.taskUpdates = Math.min(Math.floor(rows * random() * 0.4), live - txn.taskDeletes)
      txn.taskInserts = rows - txn.taskDeletes - txn.taskUpdates
    }
    if (txn.workspaceUpdates) txn.workspaceUpdateFrom = between(0, workspaces - txn.workspaceUpdates)
    workspaces += txn.workspaceInserts
    // Inserted first, then updated (among rows that survive this transaction's deletes), then the oldest deleted.
    newestTask += txn.taskInserts
    if (txn.taskUpdates) txn.taskUpdateFrom = between(oldestTask + txn.taskDeletes, newestTask - txn.taskUpdates + 1)
    oldestTask += txn.taskDeletes

    transactions.push(txn)
    changes += rows
    largest = Math.max(largest, rows)
  }
  return { transactions, changes, largest }
}

const FIELDS_PER_TRANSACTION = 7

// Rows are found by primary key (`= any (array(…))`, so a small statement never scans the table); every statement
// checks its row count, so the changes the consumers must see are exactly the planned ones.
const PROCEDURE = `
create or replace procedure bench_workload(plan int[]) language plpgsql as $$
declare
  base uuid := md5('w0')::uuid;
  workspaces_made int := 0;
  oldest int := 1;
  newest int := 0;
  i int := 1;
  affected int;
begin
  while i <= coalesce(array_length(plan, 1), 0) loop
    if plan[i] > 0 then
      insert into workspaces (id, name)
      select md5('w' || g)::uuid, 'workspace ' || g from generate_series(workspaces_made + 1, workspaces_made + plan[i]) g;
      workspaces_made := workspaces_made + plan[i];
    end if;
    if plan[i + 1] > 0 then
      update workspaces set name = name || '+', updated_at = now()
      where id = any (array(select md5('w' || g)::uuid from generate_series(plan[i + 2], plan[i + 2] + plan[i + 1] - 1) g));
      get diagnostics affected = row_count;
      if affected <> plan[i + 1] then raise exception 'workspace update: % rows, planned %', affected, plan[i + 1]; end if;
    end if;
    if plan[i + 3] > 0 then
      insert into tasks (id, workspace_id, title, description, status, priority, assignee_id, due_at, labels, metadata)
      select md5('t' || g)::uuid, base, 'task ' || g,
             case when g % 3 = 0 then repeat('Describe the work for task ' || g || '. ', 1 + g % 4) end,
             (array['todo','in_progress','blocked','done','cancelled'])[1 + g % 5], g % 5,
             case when g % 2 = 0 then md5('u' || (g % 50))::uuid end,
             case when g % 4 = 0 then timestamptz '2026-01-01 09:00:00+00' + g * interval '1 minute' end,
             array['label-' || (g % 7), 'area-' || (g % 3)],
             jsonb_build_object('n', g, 'estimate', (g % 13) * 0.5, 'flags', jsonb_build_array(g % 2 = 0, 'x'))
      from generate_series(newest + 1, newest + plan[i + 3]) g;
      newest := newest + plan[i + 3];
    end if;
    if plan[i + 4] > 0 then
      update tasks set status = (array['todo','in_progress','blocked','done','cancelled'])[1 + (priority + 1) % 5],
                       priority = priority + 1, updated_at = now()
      where id = any (array(select md5('t' || g)::uuid from generate_series(plan[i + 5], plan[i + 5] + plan[i + 4] - 1) g));
      get diagnostics affected = row_count;
      if affected <> plan[i + 4] then raise exception 'task update: % rows, planned %', affected, plan[i + 4]; end if;
    end if;
    if plan[i + 6] > 0 then
      delete from tasks where id = any (array(select md5('t' || g)::uuid from generate_series(oldest, oldest + plan[i + 6] - 1) g));
      get diagnostics affected = row_count;
      if affected <> plan[i + 6] then raise exception 'task delete: % rows, planned %', affected, plan[i + 6]; end if;
      oldest := oldest + plan[i + 6];
    end if;
    commit;
    i := i + ${FIELDS_PER_TRANSACTION};
  end loop;
end $$`

/** The base workspace and the procedure: run before the slots are created, so the stream holds the workload only. */
export async function prepareWorkload(sql: postgres.Sql) {
  await sql`insert into workspaces (id, name) values (md5('w0')::uuid, 'workspace 0')`
  await sql.unsafe(PROCEDURE)
}

export async function writeWorkload(sql: postgres.Sql, plan: Plan) {
  const flat = plan.transactions.flatMap((t) => [
    t.workspaceInserts, t.workspaceUpdates, t.workspaceUpdateFrom, t.taskInserts, t.taskUpdates, t.taskUpdateFrom, t.taskDeletes,
  ])
  // The procedure's plans are made once, while the tables are nearly empty: a sequential scan would be chosen then
  // and kept for every later statement, each filtering the whole table against its id array.
  const connection = await sql.reserve()
  try {
    await connection.unsafe('set enable_seqscan = off')
    await connection.unsafe(`call bench_workload('{${flat.join(',')}}'::int[])`)
  } finally {
    await connection.unsafe('reset enable_seqscan').catch(() => {})
    connection.release()
  }
}

// 100 rows of 20 kB make a 2 MB statement.
const SEED_BATCH = 100

/** `count` tasks of a new workspace, task n described by `describe(n)`; returns their ids. */
export async function seedTasks(sql: postgres.Sql, count: number, describe: (n: number) => string): Promise<string[]> {
  const workspaceId = await createWorkspace(sql)
  const ids: string[] = []
  for (let from = 1; from <= count; from += SEED_BATCH) {
    const rows = Array.from({ length: Math.min(SEED_BATCH, count - from + 1) }, (_, i) => ({
      id: crypto.randomUUID(), workspace_id: workspaceId, title: `task ${from + i}`, description: describe(from + i),
    }))
    await sql`insert into tasks ${sql(rows)}`
    ids.push(...rows.map((row) => row.id))
  }
  return ids
}

/**
 * `count` transactions of one UPDATE each, setting `priority` alone, round robin over `ids`, each sent once the one
 * before has committed: an application's pace on one connection. The commits are synchronous (the throwaway
 * cluster's default is not), so that each is flushed, and so sent to the walsenders, as it commits, as in
 * production rather than in the WAL writer's batches; the cluster runs with fsync off, so that costs no disk wait.
 */
export async function writeSingleRowUpdates(sql: postgres.Sql, ids: string[], count: number) {
  const connection = await sql.reserve()
  try {
    await connection`set synchronous_commit = on`
    for (let i = 0; i < count; i++) {
      const { count: updated } = await connection`update tasks set priority = priority + 1 where id = ${ids[i % ids.length]!}`
      if (updated !== 1) throw new Error(`update ${i + 1} of ${count} changed ${updated} rows`)
    }
  } finally {
    await connection`reset synchronous_commit`.catch(() => {})
    connection.release()
  }
}
