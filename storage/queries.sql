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
-- A new job in state created (or queued behind the user's running ones), its price held in the
-- same transaction (storage/migrations/0009); committed before createTask is called. Fenced by
-- the epoch when one is given.
SELECT r.status, r.available, r.free_left, r.waiting, (r.job).*
FROM create_job_with_hold(%(request_key)s, %(chat_id)s, %(user_id)s, %(lang)s, %(model)s, %(input)s,
                          %(callback_token)s, %(progress_message_id)s, %(deadline_s)s, %(price)s,
                          %(free_per_day)s, %(kie_credits)s, %(epoch)s, %(agreed)s,
                          %(max_active)s, %(queue_length)s, %(expected_s)s, %(expected_p90_s)s,
                          %(request_message_id)s) r

-- name: job_by_request_key
-- The job an idempotency key already created.
SELECT * FROM jobs WHERE request_key = %(request_key)s

-- name: get_job
-- One job row.
SELECT * FROM jobs WHERE id = %(job_id)s

-- name: transition_job
-- Move one job from the expected state to a new one, fenced by the epoch; NULL fields keep their
-- value. A stop the user asked for (user_stop) refuses the moves it forbids. `queue_waiting`: the
-- move freed one of the user's running slots (or left the queue) and jobs of the user are queued.
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
    kie_credits_consumed = COALESCE(%(kie_credits_consumed)s, kie_credits_consumed),
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
  -- the user asked to stop: no createTask, and once they stopped waiting, no outcome to deliver
  AND NOT (jobs.user_stop IS NOT NULL AND %(new)s = 'submitting')
  AND NOT (jobs.user_stop IS NOT DISTINCT FROM 'stop_waiting' AND %(new)s IN ('succeeded', 'failed'))
RETURNING jobs.*,
    (%(expected)s IN ('queued', 'created', 'submitting', 'submitted', 'succeeded', 'failed')
     AND %(new)s NOT IN ('created', 'submitting', 'submitted', 'succeeded', 'failed')
     AND EXISTS (SELECT 1 FROM jobs q WHERE q.user_id = jobs.user_id AND q.state = 'queued')) AS queue_waiting

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
WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled', 'abandoned')
ORDER BY id

-- name: unfinished_jobs
-- Every unfinished job, whole rows, oldest first: a new supervisor adopts them in one read.
SELECT * FROM jobs
WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled', 'abandoned')
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
-- Store a KIE callback before answering it and, when `notify` (a standby stored it), tell the
-- leader when it commits (payload: the job id, a space, the storing instance). A leader storing
-- one tells itself in-process: every NOTIFY costs a transaction in each listening session.
WITH stored AS (
    INSERT INTO callback_inbox (job_id, body, signature_ok, received_by)
    VALUES (%(job_id)s, %(body)s, %(signature_ok)s, %(received_by)s)
    RETURNING id, job_id
), notified AS (
    SELECT pg_notify('kiebot_callback', stored.job_id::text || ' ' || coalesce(%(received_by)s, ''))
    FROM stored WHERE %(notify)s
)
SELECT stored.id FROM stored, (SELECT count(*) FROM notified) n

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

-- name: insert_updates
-- Store Telegram updates in one transaction (a getUpdates answer, or one webhook POST),
-- redeliveries ignored; when `notify` (a standby stored them), one notification for the batch if
-- any update was new (payload: the storing instance).
WITH stored AS (
    INSERT INTO telegram_updates (update_id, body, received_by)
    SELECT u.update_id, u.body, %(received_by)s
    FROM unnest(%(update_ids)s::bigint[], %(bodies)s::jsonb[]) AS u(update_id, body)
    ON CONFLICT (update_id) DO NOTHING
    RETURNING update_id
), notified AS (
    SELECT pg_notify('kiebot_update', coalesce(%(received_by)s, '')) WHERE %(notify)s AND EXISTS (SELECT 1 FROM stored)
)
SELECT stored.update_id FROM stored, (SELECT count(*) FROM notified) n

-- name: unprocessed_updates
-- Stored updates whose handlers have not finished, in update_id order, except those in flight.
SELECT update_id, body FROM telegram_updates WHERE processed_at IS NULL
  AND NOT (update_id = ANY(%(skip)s::bigint[]))
ORDER BY update_id LIMIT %(limit)s

-- name: mark_updates_processed
-- A batch of updates whose handlers finished; fenced by the epoch: `current` is false (and
-- nothing is marked) when the term has moved on.
WITH term AS (SELECT epoch FROM leader_term WHERE id = 1 FOR SHARE),
done AS (
  UPDATE telegram_updates SET processed_at = now(), processed_epoch = %(epoch)s
  FROM term
  WHERE telegram_updates.update_id = ANY(%(update_ids)s::bigint[]) AND telegram_updates.processed_at IS NULL
    AND term.epoch = %(epoch)s
  RETURNING telegram_updates.update_id)
SELECT (SELECT epoch FROM term) = %(epoch)s AS current, (SELECT count(*) FROM done) AS marked

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

-- name: remember_user_lang
-- A user's language in one round trip: remembered, or (first sight) kept as `lang` and returned.
WITH known AS (SELECT lang FROM users WHERE user_id = %(user_id)s),
new AS (
    INSERT INTO users (user_id, lang) SELECT %(user_id)s, %(lang)s WHERE NOT EXISTS (SELECT 1 FROM known)
    ON CONFLICT (user_id) DO NOTHING
    RETURNING lang
)
SELECT lang FROM known UNION ALL SELECT lang FROM new

-- name: database_gauges
-- Unfinished jobs by state, inbox backlogs and the oldest unfinished job's age (for /metrics).
-- Every part reads a partial index of unfinished rows (jobs_unfinished_by_state and the two
-- *_unprocessed ones): a scrape costs O(unfinished work), however many jobs ever finished.
SELECT
    (SELECT COALESCE(jsonb_object_agg(s.state, s.n), '{}'::jsonb) FROM (
        SELECT state::text AS state, count(*) AS n FROM jobs
        WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled', 'abandoned')
        GROUP BY state) s) AS jobs_by_state,
    (SELECT count(*) FROM callback_inbox WHERE processed_at IS NULL) AS callback_backlog,
    (SELECT count(*) FROM telegram_updates WHERE processed_at IS NULL) AS update_backlog,
    COALESCE((SELECT extract(epoch FROM now() - min(created_at)) FROM jobs
              WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled', 'abandoned')), 0)::float8 AS oldest_age_s

-- name: active_jobs_for_user
-- A user's jobs queued or still generating (the queue, /cancel), oldest first: once a job's
-- result is being delivered its generation is over, so a user who answers the photo at once
-- does not wait, and a delivery stuck behind Telegram never keeps its user busy.
SELECT * FROM jobs WHERE user_id = %(user_id)s
  AND state IN ('queued', 'created', 'submitting', 'submitted', 'succeeded', 'failed')
ORDER BY id

-- name: launch_view
-- What starting a job needs to know, in one read: how many of the user's generations run and
-- wait (jobs_generating_by_user), and the model's usual duration (model_durations, migration 0009).
SELECT
    (SELECT count(*) FROM jobs WHERE user_id = %(user_id)s
        AND state IN ('created', 'submitting', 'submitted', 'succeeded', 'failed'))::integer AS running,
    (SELECT count(*) FROM jobs WHERE user_id = %(user_id)s AND state = 'queued')::integer AS waiting,
    d.median_s, d.p90_s, d.samples
FROM model_durations(%(model)s, %(samples)s) d

-- name: model_durations
-- A model's usual duration over its latest successful deliveries (migration 0009).
SELECT median_s, p90_s, samples FROM model_durations(%(model)s, %(samples)s)

-- name: request_job_stop
-- The user asked to stop a job (cancel, or stop waiting): kept in the row for whichever leader
-- runs it, while the job can still be stopped; stop_waiting is never taken back. Fenced by the
-- given epoch (NULL: unfenced). Returns the row as it is now (its state says if it was too late).
WITH term AS (SELECT epoch FROM leader_term WHERE id = 1 FOR SHARE)
UPDATE jobs SET user_stop = CASE
        WHEN jobs.state IN ('queued', 'created', 'submitting', 'submitted')
             AND jobs.user_stop IS DISTINCT FROM 'stop_waiting' THEN %(kind)s
        ELSE jobs.user_stop END
FROM term
WHERE jobs.id = %(job_id)s AND (%(epoch)s::bigint IS NULL OR term.epoch = %(epoch)s::bigint)
RETURNING jobs.*

-- name: start_queued_job
-- A queued job's turn, if it has come (see start_queued_job in migration 0009).
SELECT r.status, r.job_position, r.others_waiting, (r.job).* FROM start_queued_job(%(job_id)s, %(epoch)s) r

-- name: queued_job_ids_for_user
-- A user's queued jobs, first in line first (jobs_generating_by_user).
SELECT id FROM jobs WHERE user_id = %(user_id)s AND state = 'queued' ORDER BY id

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
      AND j.state IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled', 'abandoned')
      AND j.updated_at < now() - make_interval(secs => %(age_s)s)
    ORDER BY e.at LIMIT %(batch)s)

-- name: wallet
-- One user's balances (none: an empty wallet).
SELECT user_id, available, held FROM wallets WHERE user_id = %(user_id)s

-- name: user_movements
-- The latest ledger entries of one user, newest first, with the model of the job each belongs to.
SELECT l.id, l.kind::text AS kind, l.from_account::text AS from_account, l.to_account::text AS to_account,
       l.amount, l.job_id, l.charge_id, l.reason, l.at, j.model
FROM ledger l LEFT JOIN jobs j ON j.id = l.job_id
WHERE l.user_id = %(user_id)s ORDER BY l.id DESC LIMIT %(limit)s

-- name: free_used_today
-- Free generations of a model a user has used today (UTC); failed, cancelled and abandoned ones give theirs back.
SELECT count(*) AS n FROM jobs
WHERE user_id = %(user_id)s AND model = %(model)s AND free
  AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
  AND state NOT IN ('cancelled', 'abandoned', 'undeliverable', 'delivery_unknown')
  AND outcome IS DISTINCT FROM 'failure'

-- name: free_used_today_by_model
-- Free generations used today (UTC) by one user, per model.
SELECT model, count(*) AS n FROM jobs
WHERE user_id = %(user_id)s AND free
  AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
  AND state NOT IN ('cancelled', 'abandoned', 'undeliverable', 'delivery_unknown')
  AND outcome IS DISTINCT FROM 'failure'
GROUP BY model

-- name: grant_credits
-- An operator's grant or the welcome credit (see grant_credits in migration 0007).
SELECT status, available FROM grant_credits(%(user_id)s, %(amount)s, %(kind)s::ledger_kind, %(reason)s)

-- name: credit_star_payment
-- A Stars payment credited once (see credit_star_payment in migration 0007).
SELECT credit_star_payment(%(charge_id)s, %(provider_charge_id)s, %(user_id)s, %(package_id)s, %(stars)s,
                           %(credits)s, %(referrer_bonus)s, %(referred_bonus)s, %(epoch)s) AS status

-- name: request_star_refund
-- Take back what is available of a payment's credits and queue its refund (migration 0007).
SELECT status, taken, user_id FROM request_star_refund(%(charge_id)s, %(reason)s)

-- name: star_payment
-- One Stars payment.
SELECT * FROM star_payments WHERE charge_id = %(charge_id)s

-- name: user_star_payments
-- A user's Stars payments, newest first.
SELECT * FROM star_payments WHERE user_id = %(user_id)s ORDER BY paid_at DESC, charge_id LIMIT %(limit)s

-- name: due_refunds
-- Refunds whose refundStarPayment call is due (the outbox), oldest first.
SELECT * FROM star_payments WHERE state = 'refund_requested' AND refund_next_at <= now()
ORDER BY refund_next_at LIMIT %(limit)s

-- name: refund_sent
-- Telegram refunded the payment (or had already): the outbox entry is done.
UPDATE star_payments SET state = 'refunded', refunded_at = now(), refund_error = NULL, refund_next_at = NULL
WHERE charge_id = %(charge_id)s AND state = 'refund_requested' RETURNING charge_id

-- name: refund_retry
-- The refund call failed in a way worth retrying: try again later.
UPDATE star_payments SET refund_attempts = refund_attempts + 1, refund_error = %(error)s,
    refund_next_at = now() + make_interval(secs => %(delay_s)s)
WHERE charge_id = %(charge_id)s AND state = 'refund_requested' RETURNING refund_attempts

-- name: refund_given_up
-- Telegram refused the refund for good: the operator must look (the credits taken stay taken).
UPDATE star_payments SET state = 'refund_failed', refund_attempts = refund_attempts + 1, refund_error = %(error)s,
    refund_next_at = NULL
WHERE charge_id = %(charge_id)s AND state = 'refund_requested' RETURNING charge_id

-- name: record_referral
-- Who brought a user, once; never oneself, never back to someone the user brought (no loops),
-- and only before the user's first purchase.
WITH RECURSIVE chain(referrer_id, depth) AS (
    SELECT r.referrer_id, 1 FROM referrals r WHERE r.user_id = %(referrer_id)s
    UNION ALL
    SELECT r.referrer_id, c.depth + 1 FROM referrals r JOIN chain c ON r.user_id = c.referrer_id
    WHERE c.depth < 64
)
INSERT INTO referrals (user_id, referrer_id)
SELECT %(user_id)s, %(referrer_id)s
WHERE %(user_id)s <> %(referrer_id)s
  AND NOT EXISTS (SELECT 1 FROM chain WHERE chain.referrer_id = %(user_id)s)
  AND NOT EXISTS (SELECT 1 FROM star_payments s WHERE s.user_id = %(user_id)s)
ON CONFLICT (user_id) DO NOTHING
RETURNING user_id

-- name: referral_untold
-- Was the user brought by this referrer and not yet told of it (nor bought anything since,
-- which is when the invitation's bonus is given)?
SELECT r.user_id FROM referrals r
WHERE r.user_id = %(user_id)s AND r.referrer_id = %(referrer_id)s AND r.told_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM star_payments s WHERE s.user_id = r.user_id)

-- name: mark_referral_told
-- The invited user was told of the invitation; returns nothing when they had been told before.
UPDATE referrals SET told_at = now() WHERE user_id = %(user_id)s AND told_at IS NULL
RETURNING user_id

-- name: ledger_totals
-- The whole ledger in one pass: the entries' sum per account kind and entry count.
SELECT account, sum(delta)::bigint AS balance, count(*) AS n FROM (
    SELECT from_account::text AS account, -amount AS delta FROM ledger
    UNION ALL
    SELECT to_account::text AS account, amount AS delta FROM ledger
) moves GROUP BY account

-- name: ledger_wallet_mismatches
-- Wallets that disagree with the sum of their user's entries (or entries with no wallet).
WITH derived AS (
    SELECT user_id,
           sum(CASE WHEN to_account = 'available' THEN amount ELSE 0 END)
         - sum(CASE WHEN from_account = 'available' THEN amount ELSE 0 END) AS available,
           sum(CASE WHEN to_account = 'held' THEN amount ELSE 0 END)
         - sum(CASE WHEN from_account = 'held' THEN amount ELSE 0 END) AS held
    FROM ledger GROUP BY user_id
)
SELECT coalesce(w.user_id, d.user_id) AS user_id, coalesce(w.available, 0) AS wallet_available,
       coalesce(w.held, 0) AS wallet_held, coalesce(d.available, 0) AS ledger_available,
       coalesce(d.held, 0) AS ledger_held
FROM wallets w FULL JOIN derived d ON d.user_id = w.user_id
WHERE coalesce(w.available, 0) <> coalesce(d.available, 0) OR coalesce(w.held, 0) <> coalesce(d.held, 0)
   OR coalesce(d.available, 0) < 0 OR coalesce(d.held, 0) < 0
LIMIT 100

-- name: ledger_job_mismatches
-- Jobs whose money does not match their fate: a paid job with no hold or a hold of another
-- amount, a finished job whose hold is unresolved, a delivered result not captured (or
-- captured for another amount), a failed/cancelled/abandoned/undelivered job that was charged, a
-- resolution without a hold, or a free job with money on it.
WITH money AS (
    SELECT job_id,
           sum(amount) FILTER (WHERE kind = 'hold') AS held,
           sum(amount) FILTER (WHERE kind = 'capture') AS captured,
           sum(amount) FILTER (WHERE kind = 'release') AS released
    FROM ledger WHERE job_id IS NOT NULL GROUP BY job_id
)
SELECT j.id, j.state::text AS state, j.outcome, j.price, j.free, m.held, m.captured, m.released
FROM jobs j LEFT JOIN money m ON m.job_id = j.id
WHERE (j.price > 0 AND m.held IS DISTINCT FROM j.price)
   OR (j.price = 0 AND (m.held IS NOT NULL OR m.captured IS NOT NULL OR m.released IS NOT NULL))
   OR (j.state = 'delivered' AND j.outcome = 'success' AND j.price > 0 AND m.captured IS DISTINCT FROM j.price)
   OR ((j.state IN ('cancelled', 'abandoned', 'undeliverable', 'delivery_unknown', 'failed')
        OR (j.state IN ('delivering', 'delivered') AND j.outcome = 'failure'))
       AND (m.captured IS NOT NULL OR (j.price > 0 AND m.released IS DISTINCT FROM j.price)))
   OR (j.state IN ('queued', 'created', 'submitting', 'submitted', 'succeeded')
       AND (m.captured IS NOT NULL OR m.released IS NOT NULL))
   OR (j.free AND j.price <> 0)
ORDER BY j.id LIMIT 100

-- name: ledger_orphan_resolutions
-- Captures or releases of a job that has no hold.
SELECT l.id, l.job_id, l.kind::text AS kind FROM ledger l
WHERE l.kind IN ('capture', 'release')
  AND NOT EXISTS (SELECT 1 FROM ledger h WHERE h.job_id = l.job_id AND h.kind = 'hold')
LIMIT 100

-- name: ledger_payment_mismatches
-- Stars payments whose credit is missing or not their package's amount, or whose refund entry
-- disagrees with the payment's state.
SELECT s.charge_id, s.state, s.credits, s.refund_taken,
       (SELECT sum(amount) FROM ledger l WHERE l.charge_id = s.charge_id AND l.kind = 'purchase') AS purchased,
       (SELECT sum(amount) FROM ledger l WHERE l.charge_id = s.charge_id AND l.kind = 'refund') AS refunded
FROM star_payments s
WHERE (SELECT sum(amount) FROM ledger l WHERE l.charge_id = s.charge_id AND l.kind = 'purchase') IS DISTINCT FROM s.credits
   OR (s.state = 'credited' AND EXISTS (SELECT 1 FROM ledger l WHERE l.charge_id = s.charge_id AND l.kind = 'refund'))
   OR (s.state <> 'credited' AND coalesce((SELECT sum(amount) FROM ledger l
                                            WHERE l.charge_id = s.charge_id AND l.kind = 'refund'), 0)
                                  <> coalesce(s.refund_taken, 0))
ORDER BY s.charge_id LIMIT 100

-- name: ledger_unmatched_purchases
-- Purchase entries with no Stars payment behind them.
SELECT l.id, l.charge_id FROM ledger l
WHERE l.kind = 'purchase' AND NOT EXISTS (SELECT 1 FROM star_payments s WHERE s.charge_id = l.charge_id)
LIMIT 100

-- name: open_payment_discrepancies
-- Payments the reconciliation found on one side only, not yet resolved.
SELECT charge_id, side, detail, found_at FROM payment_discrepancies WHERE resolved_at IS NULL ORDER BY found_at

-- name: record_payment_discrepancy
-- The reconciliation found a payment on one side only (kept until it is resolved).
INSERT INTO payment_discrepancies (charge_id, side, detail) VALUES (%(charge_id)s, %(side)s, %(detail)s)
ON CONFLICT (charge_id) DO UPDATE SET side = EXCLUDED.side, detail = EXCLUDED.detail, resolved_at = NULL
WHERE payment_discrepancies.resolved_at IS NOT NULL OR payment_discrepancies.side <> EXCLUDED.side
RETURNING charge_id

-- name: resolve_payment_discrepancies
-- Discrepancies the latest reconciliation no longer sees.
UPDATE payment_discrepancies SET resolved_at = now()
WHERE resolved_at IS NULL AND NOT (charge_id = ANY(%(still_open)s::text[])) RETURNING charge_id

-- name: star_payment_ids_since
-- Charge ids of payments (and their state) made since a time (the reconciliation's window).
SELECT charge_id, state, stars, user_id, paid_at FROM star_payments WHERE paid_at >= %(since)s

-- name: claim_operator_alert
-- Send an operator alert of this kind only if none was sent within the period (any instance).
INSERT INTO operator_alerts (kind, sent_at) VALUES (%(kind)s, now())
ON CONFLICT (kind) DO UPDATE SET sent_at = now()
WHERE operator_alerts.sent_at < now() - make_interval(secs => %(period_s)s)
RETURNING kind

-- name: release_operator_alert
-- An operator alert whose message reached nobody: the next one of its kind is sent.
DELETE FROM operator_alerts WHERE kind = %(kind)s

-- name: user_jobs_money
-- One user's jobs, newest first, with what each was charged.
SELECT j.id, j.model, j.state::text AS state, j.price, j.free,
       coalesce((SELECT sum(amount) FROM ledger l WHERE l.job_id = j.id AND l.kind = 'capture'), 0) AS charged
FROM jobs j WHERE j.user_id = %(user_id)s ORDER BY j.created_at DESC, j.id DESC LIMIT %(limit)s

-- name: user_known
-- Has kiebot ever seen this user (chatted, paid, or been granted credits)?
SELECT EXISTS (SELECT 1 FROM users WHERE user_id = %(user_id)s)
    OR EXISTS (SELECT 1 FROM wallets WHERE user_id = %(user_id)s)
    OR EXISTS (SELECT 1 FROM jobs WHERE user_id = %(user_id)s) AS known

-- name: kie_price_drift
-- Per model: jobs where KIE reported what it charged, and how that compares with our quote.
SELECT model, count(*) AS jobs, sum(kie_credits_quoted) AS quoted, sum(kie_credits_consumed) AS consumed
FROM jobs WHERE kie_credits_consumed IS NOT NULL AND kie_credits_quoted IS NOT NULL AND kie_credits_consumed > 0
GROUP BY model ORDER BY model

-- name: ledger_user_count
-- How many users have a wallet.
SELECT count(*) AS n FROM wallets

-- name: mark_payment_announced
-- The user was told of this payment; returns nothing when they had been told before.
UPDATE star_payments SET announced_at = now() WHERE charge_id = %(charge_id)s AND announced_at IS NULL
RETURNING charge_id

-- name: payment_announced
-- Was the user told of this payment?
SELECT announced_at IS NOT NULL AS announced FROM star_payments WHERE charge_id = %(charge_id)s
