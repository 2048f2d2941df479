-- kiebot schema, version 8: the two job states of the honest controls (#14), alone in their
-- migration because Postgres lets a transaction use a new enum label only once the one that
-- added it has committed, and version 9 uses them in indexes. `queued`: a job waiting its turn
-- behind the user's running generations (before `created`, where it starts); `abandoned`: the
-- user stopped waiting for a task KIE already had (final, appended like every later label).
ALTER TYPE job_state ADD VALUE IF NOT EXISTS 'queued' BEFORE 'created';
ALTER TYPE job_state ADD VALUE IF NOT EXISTS 'abandoned';
