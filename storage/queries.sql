-- Every runtime SQL statement kiebot runs, by name. Loaded once by storage/db.py.
-- Fenced statements lock the leader_term row FOR SHARE in the same statement: an epoch bump
-- (UPDATE leader_term) waits for them, and they see a bump that committed first.

-- name: ping
-- Is the database answering?
SELECT 1 AS ok

-- name: current_epoch
-- The epoch of the current leadership term.
SELECT epoch FROM leader_term WHERE id = 1

-- name: bump_epoch
-- Start a new term: the caller has just acquired the leadership lock.
UPDATE leader_term SET epoch = epoch + 1, holder = %(holder)s, acquired_at = now()
WHERE id = 1 RETURNING epoch

-- name: try_leader_lock
-- One non-blocking attempt at the session-level leadership lock.
SELECT pg_try_advisory_lock(%(key)s) AS locked

-- name: leader_lock_held
-- Does this session still hold the leadership lock?
SELECT count(*) > 0 AS held FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
  AND classid = %(classid)s::oid AND objid = %(objid)s::oid AND objsubid = 1

-- name: release_leader_lock
-- Give the leadership lock back (graceful resign).
SELECT pg_advisory_unlock(%(key)s) AS released

-- name: notify_resigned
-- Wake the standbys: the leader has resigned.
SELECT pg_notify('kiebot_leader', %(holder)s)

-- name: listen_leader
-- Standbys listen for a resigning leader.
LISTEN kiebot_leader

-- name: listen_stored_work
-- The leader listens for callbacks and updates stored by any instance (insert_callback, insert_update).
LISTEN kiebot_callback; LISTEN kiebot_update

-- name: backend_pid
-- The server process of this session (to tell one listening session from the next).
SELECT pg_backend_pid() AS pid

-- name: insert_job
-- A new job in state created; committed before createTask is called.
INSERT INTO jobs (request_key, chat_id, user_id, lang, model, input, callback_token,
                  progress_message_id, deadline_at)
VALUES (%(request_key)s, %(chat_id)s, %(user_id)s, %(lang)s, %(model)s, %(input)s,
        %(callback_token)s, %(progress_message_id)s, now() + make_interval(secs => %(deadline_s)s))
ON CONFLICT (request_key) DO NOTHING
RETURNING *

-- name: job_by_request_key
-- The job an idempotency key already created.
SELECT * FROM jobs WHERE request_key = %(request_key)s

-- name: get_job
-- One job row.
SELECT * FROM jobs WHERE id = %(job_id)s

-- name: transition_job
-- Move one job from the expected state to a new one, fenced by the epoch; NULL fields keep their value.
WITH term AS (SELECT epoch FROM leader_term WHERE id = 1 FOR SHARE)
UPDATE jobs SET
    state = %(new)s::job_state,
    epoch = %(epoch)s,
    updated_at = now(),
    outcome = COALESCE(%(outcome)s, outcome),
    kie_task_id = COALESCE(%(kie_task_id)s, kie_task_id),
    result_urls = COALESCE(%(result_urls)s, result_urls),
    failure_reason = COALESCE(%(failure_reason)s, failure_reason),
    failure_code = COALESCE(%(failure_code)s, failure_code),
    failure_detail = COALESCE(%(failure_detail)s, failure_detail),
    delivered_message_ids = COALESCE(%(delivered_message_ids)s, delivered_message_ids),
    result_file_ids = COALESCE(%(result_file_ids)s, result_file_ids),
    result_text = COALESCE(%(result_text)s, result_text),
    claim_epoch = CASE WHEN %(new)s = 'delivering' THEN %(epoch)s ELSE claim_epoch END,
    claimed_at = CASE WHEN %(new)s = 'delivering' THEN now() ELSE claimed_at END,
    submitted_at = CASE WHEN %(new)s = 'submitted' THEN now() ELSE submitted_at END,
    finished_at = CASE WHEN %(new)s IN ('succeeded', 'failed') THEN now() ELSE finished_at END,
    delivered_at = CASE WHEN %(new)s = 'delivered' THEN now() ELSE delivered_at END,
    delivery_parts = COALESCE(%(delivery_parts)s, delivery_parts),
    claim_released = CASE WHEN %(new)s = 'delivering' THEN false ELSE claim_released END
FROM term
WHERE jobs.id = %(job_id)s
  AND jobs.state = %(expected)s::job_state
  AND (term.epoch = %(epoch)s
       -- claim-fenced: the holder of a delivery claim may record what it sent even after its
       -- term ended, as long as nobody re-claimed the delivery and it did not release it.
       OR (%(claim_fenced)s AND jobs.state = 'delivering' AND jobs.claim_epoch = %(epoch)s
           AND NOT jobs.claim_released))
  AND (%(expected_claim_epoch)s::bigint IS NULL OR jobs.claim_epoch = %(expected_claim_epoch)s::bigint)
RETURNING jobs.*

-- name: record_delivery_parts
-- The parts of a delivery sent so far, recorded under the claim that sent them (claim-fenced,
-- like the delivered write); with release = true the claim is also handed back: nothing of it
-- is on the wire, so the next leader may resume at once.
UPDATE jobs SET delivery_parts = %(parts)s, updated_at = now(),
    claim_released = %(release)s
WHERE id = %(job_id)s AND state = 'delivering' AND claim_epoch = %(epoch)s AND NOT claim_released
RETURNING *

-- name: unfinished_job_ids
-- Every job that is not in a final state, oldest first.
SELECT id FROM jobs
WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled')
ORDER BY id

-- name: unfinished_jobs
-- Every unfinished job, whole rows, oldest first: a new supervisor adopts them in one read.
SELECT * FROM jobs
WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled')
ORDER BY id

-- name: job_counts_by_state
-- How many jobs are in each state (for /metrics).
SELECT state::text AS state, count(*) AS n FROM jobs GROUP BY state

-- name: recent_jobs_for_user
-- A user's latest jobs, newest first.
SELECT * FROM jobs WHERE user_id = %(user_id)s ORDER BY created_at DESC LIMIT %(limit)s

-- name: job_events
-- A job's state history, oldest first.
SELECT from_state::text, to_state::text, epoch, at FROM job_events WHERE job_id = %(job_id)s ORDER BY id

-- name: insert_callback
-- Store a KIE callback before answering it, and tell the leader (the job id) when it commits.
WITH stored AS (
    INSERT INTO callback_inbox (job_id, body, signature_ok, received_by)
    VALUES (%(job_id)s, %(body)s, %(signature_ok)s, %(received_by)s)
    RETURNING id, job_id
)
SELECT stored.id, pg_notify('kiebot_callback', stored.job_id::text)::text AS notified FROM stored

-- name: unprocessed_callbacks_for_job
-- A job's callbacks not yet handled, in arrival order.
SELECT id, body, signature_ok, received_at FROM callback_inbox
WHERE job_id = %(job_id)s AND processed_at IS NULL ORDER BY id

-- name: jobs_with_unprocessed_callbacks
-- Jobs that have callbacks waiting (the supervisor's sweep).
SELECT DISTINCT job_id FROM callback_inbox WHERE processed_at IS NULL

-- name: mark_callback_processed
-- A callback was handled; fenced by the epoch.
WITH term AS (SELECT epoch FROM leader_term WHERE id = 1 FOR SHARE)
UPDATE callback_inbox SET processed_at = now(), processed_epoch = %(epoch)s
FROM term
WHERE callback_inbox.id = %(id)s AND callback_inbox.processed_at IS NULL AND term.epoch = %(epoch)s
RETURNING callback_inbox.id

-- name: insert_update
-- Store a Telegram update before confirming it, and tell the leader (no payload) when it
-- commits; a redelivered update_id is ignored and notifies nobody.
WITH stored AS (
    INSERT INTO telegram_updates (update_id, body, received_by)
    VALUES (%(update_id)s, %(body)s, %(received_by)s)
    ON CONFLICT (update_id) DO NOTHING
    RETURNING update_id
)
SELECT stored.update_id, pg_notify('kiebot_update', '')::text AS notified FROM stored

-- name: unprocessed_updates
-- Stored updates whose handlers have not finished, in update_id order, except those in flight.
SELECT update_id, body FROM telegram_updates WHERE processed_at IS NULL
  AND NOT (update_id = ANY(%(skip)s::bigint[]))
ORDER BY update_id LIMIT %(limit)s

-- name: mark_update_processed
-- An update's handler finished; fenced by the epoch.
WITH term AS (SELECT epoch FROM leader_term WHERE id = 1 FOR SHARE)
UPDATE telegram_updates SET processed_at = now(), processed_epoch = %(epoch)s
FROM term
WHERE telegram_updates.update_id = %(update_id)s AND telegram_updates.processed_at IS NULL
  AND term.epoch = %(epoch)s
RETURNING telegram_updates.update_id

-- name: unprocessed_update_count
-- The Telegram inbox backlog.
SELECT count(*) AS n FROM telegram_updates WHERE processed_at IS NULL

-- name: get_conversation
-- Where a user is in the dialogue.
SELECT step, data FROM conversations WHERE chat_id = %(chat_id)s AND user_id = %(user_id)s

-- name: save_conversation
-- Remember a user's step and pending choices.
INSERT INTO conversations (chat_id, user_id, step, data, updated_at)
VALUES (%(chat_id)s, %(user_id)s, %(step)s, %(data)s, now())
ON CONFLICT (chat_id, user_id) DO UPDATE SET step = EXCLUDED.step, data = EXCLUDED.data, updated_at = now()

-- name: clear_conversation
-- Leave the dialogue.
DELETE FROM conversations WHERE chat_id = %(chat_id)s AND user_id = %(user_id)s

-- name: remember_user
-- First sight of a user: keep their language.
INSERT INTO users (user_id, lang) VALUES (%(user_id)s, %(lang)s)
ON CONFLICT (user_id) DO NOTHING

-- name: user_lang
-- The language a user chose or arrived with.
SELECT lang FROM users WHERE user_id = %(user_id)s

-- name: database_gauges
-- Unfinished jobs by state, inbox backlogs and the oldest unfinished job's age (for /metrics).
-- Every part reads a partial index of unfinished rows (jobs_unfinished_by_state and the two
-- *_unprocessed ones): a scrape costs O(unfinished work), however many jobs ever finished.
SELECT
    (SELECT COALESCE(jsonb_object_agg(s.state, s.n), '{}'::jsonb) FROM (
        SELECT state::text AS state, count(*) AS n FROM jobs
        WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled')
        GROUP BY state) s) AS jobs_by_state,
    (SELECT count(*) FROM callback_inbox WHERE processed_at IS NULL) AS callback_backlog,
    (SELECT count(*) FROM telegram_updates WHERE processed_at IS NULL) AS update_backlog,
    COALESCE((SELECT extract(epoch FROM now() - min(created_at)) FROM jobs
              WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled')), 0)::float8 AS oldest_age_s

-- name: active_jobs_for_user
-- A user's jobs still generating (the one-at-a-time rule, /cancel): once a job's result is
-- being delivered its generation is over, so a user who answers the photo at once is not
-- refused, and a delivery stuck behind Telegram never keeps its user busy.
SELECT * FROM jobs WHERE user_id = %(user_id)s
  AND state NOT IN ('delivering', 'delivered', 'delivery_unknown', 'undeliverable', 'cancelled')
ORDER BY id

-- name: set_user_lang
-- The language a user chose with /lang.
INSERT INTO users (user_id, lang) VALUES (%(user_id)s, %(lang)s)
ON CONFLICT (user_id) DO UPDATE SET lang = EXCLUDED.lang

-- name: reconcile_counts
-- What the reconciler looks at: unfinished jobs past their deadline, and delivery claims of
-- older epochs whose grace period is over.
SELECT
    (SELECT count(*) FROM jobs WHERE state IN ('created', 'submitting', 'submitted')
        AND deadline_at < now()) AS past_deadline,
    (SELECT count(*) FROM jobs WHERE state = 'delivering' AND claim_epoch < %(epoch)s
        AND claimed_at < now() - make_interval(secs => %(grace_s)s)) AS stale_claims

-- name: backend_pid
-- Which server process serves this connection (tests of the pool).
SELECT pg_backend_pid() AS pid

-- name: ping_slow
-- A ping that holds its connection for a moment (tests of the pool).
SELECT 1 AS ok FROM pg_sleep(0.05)

-- Telegram update intake

-- name: mark_update_failed
-- An update that could not be decoded or handled: done, with a reason (no secrets); fenced.
WITH term AS (SELECT epoch FROM leader_term WHERE id = 1 FOR SHARE)
UPDATE telegram_updates SET processed_at = now(), processed_epoch = %(epoch)s, failure = %(failure)s
FROM term
WHERE telegram_updates.update_id = %(update_id)s AND telegram_updates.processed_at IS NULL
  AND term.epoch = %(epoch)s
RETURNING telegram_updates.update_id

-- name: failed_updates
-- Updates set aside as failed, with their reasons.
SELECT update_id, failure FROM telegram_updates WHERE failure IS NOT NULL ORDER BY update_id

-- demo and harness reads

-- name: terminate_database_sessions
-- End the other sessions on a database about to be dropped (sim/cluster.py, on a maintenance database).
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = %(name)s AND pid <> pg_backend_pid()

-- name: drop_database_statement
-- The DROP DATABASE for a name, its identifier quoted by the server (DDL takes no parameters).
SELECT format('DROP DATABASE IF EXISTS %%I', %(name)s::text) AS statement

-- name: create_database_statement
-- The CREATE DATABASE for a name, from a template if one is given, identifiers quoted by the server.
SELECT format('CREATE DATABASE %%I', %(name)s::text)
       || CASE WHEN %(template)s::text IS NULL THEN ''
               ELSE format(' TEMPLATE %%I', %(template)s::text) END AS statement

-- name: database_commits
-- Transactions committed in a database so far (the benchmarks' commits per job).
SELECT xact_commit FROM pg_stat_database WHERE datname = %(name)s

-- name: server_settings
-- Some of the server's settings with their units (the benchmarks' machine description).
SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%(names)s::text[])

-- retention and gauges

-- name: delete_old_processed_updates
-- Retention: up to `batch` Telegram updates processed more than `age_s` seconds ago (never an
-- unprocessed one), oldest first; found through telegram_updates_processed_at.
DELETE FROM telegram_updates WHERE update_id IN (
    SELECT update_id FROM telegram_updates
    WHERE processed_at IS NOT NULL AND processed_at < now() - make_interval(secs => %(age_s)s)
    ORDER BY processed_at LIMIT %(batch)s)

-- name: delete_old_processed_callbacks
-- Retention: up to `batch` KIE callbacks processed more than `age_s` seconds ago (never an
-- unprocessed one), oldest first; found through callback_inbox_processed_at.
DELETE FROM callback_inbox WHERE id IN (
    SELECT id FROM callback_inbox
    WHERE processed_at IS NOT NULL AND processed_at < now() - make_interval(secs => %(age_s)s)
    ORDER BY processed_at LIMIT %(batch)s)

-- name: delete_old_job_events
-- Retention: up to `batch` state-change events of jobs that reached a final state more than
-- `age_s` seconds ago, oldest first. An unfinished job keeps its whole history, and a finished
-- one keeps it whole until the age has passed since its last change (final states never move).
DELETE FROM job_events WHERE id IN (
    SELECT e.id FROM job_events e JOIN jobs j ON j.id = e.job_id
    WHERE e.at < now() - make_interval(secs => %(age_s)s)
      AND j.state IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled')
      AND j.updated_at < now() - make_interval(secs => %(age_s)s)
    ORDER BY e.at LIMIT %(batch)s)
