-- Sample workspace rows for scripts/dev: loaded before extract-tasks starts, so its initial load
-- publishes them as workspace.snapshot / task.snapshot events; scripts/dev-stack.ts then changes them
-- every few seconds. Fixed ids, so that a newcomer can follow one task through its events.
-- Assignees are the people of PEOPLE in scripts/dev-stack.ts (…a001 Amina, …a002 Bruno, …a003 Chen, …a004 Dana).
-- No column is null here: the initial load cannot yet read a null column (src/initial-load.ts reads each
-- row as a text[], and postgres.js turns a NULL element into the string "NULL"). Rows created later by
-- the stream may have nulls.

insert into workspaces (id, name, created_at, updated_at) values
  ('11111111-1111-4111-8111-000000000001', 'Harbour survey',  now() - interval '40 days', now() - interval '2 days'),
  ('11111111-1111-4111-8111-000000000002', 'Well 7 workover', now() - interval '21 days', now() - interval '1 day'),
  ('11111111-1111-4111-8111-000000000003', 'Onboarding',      now() - interval '3 days',  now() - interval '3 days');

insert into tasks (id, workspace_id, title, description, status, priority, assignee_id, due_at, labels, metadata, created_at, updated_at) values
  ('22222222-2222-4222-8222-000000000001', '11111111-1111-4111-8111-000000000001', 'Book the survey vessel',
   'Two days in the second week of the month; the crane must lift 4 t.', 'done', 2,
   '7c0d6a2e-0000-4000-8000-00000000a001', now() - interval '10 days', '{logistics}', '{"vessel": "Skarv", "days": 2}',
   now() - interval '39 days', now() - interval '12 days'),
  ('22222222-2222-4222-8222-000000000002', '11111111-1111-4111-8111-000000000001', 'Calibrate the multibeam sonar',
   'Patch test over the wreck north of the breakwater.', 'in_progress', 3,
   '7c0d6a2e-0000-4000-8000-00000000a002', now() + interval '2 days', '{equipment,sonar}', '{"model": "EM 2040"}',
   now() - interval '30 days', now() - interval '1 day'),
  ('22222222-2222-4222-8222-000000000003', '11111111-1111-4111-8111-000000000001', 'Process the bathymetry grid',
   'Grid at 0.5 m, tide-corrected; deliver as GeoTIFF.', 'todo', 1,
   '7c0d6a2e-0000-4000-8000-00000000a004', now() + interval '14 days', '{processing}', '{"resolutionM": 0.5}',
   now() - interval '30 days', now() - interval '30 days'),
  ('22222222-2222-4222-8222-000000000004', '11111111-1111-4111-8111-000000000001', 'Write the survey report',
   'Include the tide corrections and the vessel log.', 'todo', 1,
   '7c0d6a2e-0000-4000-8000-00000000a003', now() + interval '21 days', '{report}', '{}',
   now() - interval '30 days', now() - interval '30 days'),
  ('22222222-2222-4222-8222-000000000005', '11111111-1111-4111-8111-000000000002', 'Pull the completion string',
   'Needs two calm days; crane on standby.', 'blocked', 4,
   '7c0d6a2e-0000-4000-8000-00000000a004', now() + interval '1 day', '{rig,critical}', '{"blockedBy": "weather"}',
   now() - interval '20 days', now() - interval '1 day'),
  ('22222222-2222-4222-8222-000000000006', '11111111-1111-4111-8111-000000000002', 'Order the replacement packer',
   'Same model as the one pulled; check the lead time.', 'done', 3,
   '7c0d6a2e-0000-4000-8000-00000000a001', now() - interval '5 days', '{procurement}', '{"po": "PO-48213"}',
   now() - interval '20 days', now() - interval '6 days'),
  ('22222222-2222-4222-8222-000000000007', '11111111-1111-4111-8111-000000000002', 'Update the well barrier diagram',
   'Match the barrier elements to the new completion.', 'todo', 2,
   '7c0d6a2e-0000-4000-8000-00000000a001', now() + interval '10 days', '{documentation}', '{}',
   now() - interval '18 days', now() - interval '18 days'),
  ('22222222-2222-4222-8222-000000000008', '11111111-1111-4111-8111-000000000002', 'Pressure-test the BOP',
   'Low 300 psi / high 5000 psi, 10 minutes each.', 'todo', 4,
   '7c0d6a2e-0000-4000-8000-00000000a002', now() + interval '3 days', '{rig,safety}', '{"lowPsi": 300, "highPsi": 5000}',
   now() - interval '15 days', now() - interval '15 days'),
  ('22222222-2222-4222-8222-000000000009', '11111111-1111-4111-8111-000000000003', 'Read the task-connector README',
   'What the connector does, what it guarantees, and what to do at 3 a.m.', 'in_progress', 0,
   '7c0d6a2e-0000-4000-8000-00000000a003', now() + interval '1 day', '{onboarding}', '{}',
   now() - interval '3 days', now() - interval '2 days'),
  ('22222222-2222-4222-8222-000000000010', '11111111-1111-4111-8111-000000000003', 'Run scripts/test',
   'It ends with a line of passed and failed counts.', 'todo', 0,
   '7c0d6a2e-0000-4000-8000-00000000a003', now() + interval '1 day', '{onboarding}', '{}',
   now() - interval '3 days', now() - interval '3 days'),
  ('22222222-2222-4222-8222-000000000011', '11111111-1111-4111-8111-000000000003', 'Subscribe to taskTopic',
   'Drop duplicates by the eventId attribute.', 'todo', 1,
   '7c0d6a2e-0000-4000-8000-00000000a002', now() + interval '5 days', '{onboarding,pubsub}', '{"subscription": "onboarding-sub"}',
   now() - interval '3 days', now() - interval '3 days');
