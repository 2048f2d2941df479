-- kiebot schema, version 9: the honest controls (#14). A user's stop request kept in the job row
-- (any leader honours it); a queue of each user's generations beyond their limit, in Postgres
-- (state `queued`, price held when queued, started in id order under the user's wallet lock);
-- the time a job left the queue; the model's usual duration when the job was made (from the
-- durations of its recent deliveries, read through an index); `abandoned` wherever the
-- final states are listed, the hold trigger included (an abandoned job is not charged); and the
-- message that asked for the job, which its result and failure notice reply to in a group.

-- What the user asked (actors/outcomes.py StopRequest): 'cancel' ends a job KIE does not have
-- yet (and offers to stop waiting for one it has), 'stop_waiting' ends it whatever KIE does.
-- transition_job refuses the moves a request forbids (to submitting; to succeeded or failed
-- once the user stopped waiting), so a JobActor that missed the request cannot act against it.
ALTER TABLE jobs ADD COLUMN user_stop text CHECK (user_stop IN ('cancel', 'stop_waiting'));
-- How many generations the user could have running when this job was made (KIEBOT_MAX_ACTIVE_JOBS);
-- NULL: no limit (it was never queued). A queued job starts under the limit it was queued with.
ALTER TABLE jobs ADD COLUMN max_active integer CHECK (max_active >= 0);
-- When the job started to generate: its creation, or the moment it left the queue.
ALTER TABLE jobs ADD COLUMN started_at timestamptz;
-- The model's usual duration (median, 90th percentile, in seconds) from request to result over
-- its recent deliveries, as read when the job was made; NULL: too few measured yet.
ALTER TABLE jobs ADD COLUMN expected_s real;
ALTER TABLE jobs ADD COLUMN expected_p90_s real;
-- The user's message that asked for the job (the /imagine message, the prompt of a wizard flow),
-- in the job's chat: in a group the result and the failure notice reply to it. NULL: rows from
-- before, and jobs started by a button with no such message to reply to.
ALTER TABLE jobs ADD COLUMN request_message_id bigint;

-- The unfinished-job indexes leave the new final state out, like the others (version 5).
DROP INDEX jobs_unfinished_by_state;
CREATE INDEX jobs_unfinished_by_state ON jobs (state, created_at)
    WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled', 'abandoned');
DROP INDEX jobs_unfinished;
CREATE INDEX jobs_unfinished ON jobs (id)
    WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled', 'abandoned');
-- A user's queued and running generations (the queue, its limit, /cancel), however many jobs
-- the user ever had.
CREATE INDEX jobs_generating_by_user ON jobs (user_id, id)
    WHERE state IN ('queued', 'created', 'submitting', 'submitted', 'succeeded', 'failed');
-- A model's latest successful deliveries, for its usual duration (model_durations below).
CREATE INDEX jobs_delivered_by_model ON jobs (model, delivered_at DESC)
    WHERE state = 'delivered' AND outcome = 'success';

-- The hold of an abandoned job is released, like that of every job that did not deliver.
CREATE OR REPLACE FUNCTION job_resolves_hold() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    held_amount bigint;
    resolution ledger_kind;
BEGIN
    IF NEW.state = 'delivered' AND NEW.outcome = 'success' THEN
        resolution := 'capture';
    ELSIF NEW.state IN ('failed', 'cancelled', 'abandoned', 'undeliverable', 'delivery_unknown')
          OR (NEW.state = 'delivered' AND NEW.outcome IS DISTINCT FROM 'success') THEN
        resolution := 'release';
    ELSE
        RETURN NEW;
    END IF;
    IF NEW.price = 0 THEN
        RETURN NEW;
    END IF;
    SELECT amount INTO held_amount FROM ledger WHERE job_id = NEW.id AND kind = 'hold';
    IF held_amount IS NULL THEN
        RETURN NEW;
    END IF;
    INSERT INTO ledger (kind, user_id, from_account, to_account, amount, job_id, epoch)
    VALUES (resolution, NEW.user_id, 'held',
            CASE WHEN resolution = 'capture' THEN 'revenue' ELSE 'available' END::ledger_account,
            held_amount, NEW.id, NEW.epoch)
    ON CONFLICT (job_id) WHERE kind IN ('capture', 'release') DO NOTHING;
    RETURN NEW;
END $$;

-- A model's usual duration, from request (or leaving the queue) to the result in the chat, over
-- its last `p_samples` successful deliveries: (median, 90th percentile, how many were measured).
CREATE FUNCTION model_durations(p_model text, p_samples integer)
RETURNS TABLE (median_s real, p90_s real, samples integer) LANGUAGE sql STABLE AS $$
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d)::real,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY d)::real,
           count(*)::integer
    FROM (SELECT extract(epoch FROM j.delivered_at - coalesce(j.started_at, j.created_at)) AS d
          FROM jobs j
          WHERE j.model = p_model AND j.state = 'delivered' AND j.outcome = 'success'
          ORDER BY j.delivered_at DESC
          LIMIT p_samples) recent
$$;

-- Create a job and hold its price in one transaction (version 7), now with the user's queue:
-- with p_max_active set and that many of the user's generations running (or others already
-- queued: the queue is first come, first served), the job is made `queued`, its price held all
-- the same, unless p_queue_length jobs wait already: then nothing is written ('queue_full',
-- with `waiting`). Jobs of one user are made and started one at a time (their wallet row is
-- locked), so the limit, the queue, the free tier and the balance are counted without a race.
-- The free tier counts an abandoned job as given back, like a cancelled one. p_request_message_id:
-- the message the job answers (jobs.request_message_id).
DROP FUNCTION create_job_with_hold(text, bigint, bigint, text, text, jsonb, text, bigint, double precision,
                                   bigint, integer, numeric, bigint, bigint);
CREATE FUNCTION create_job_with_hold(
    p_request_key text, p_chat_id bigint, p_user_id bigint, p_lang text, p_model text,
    p_input jsonb, p_callback_token text, p_progress_message_id bigint, p_deadline_s double precision,
    p_price bigint, p_free_per_day integer, p_kie_credits numeric, p_epoch bigint, p_agreed bigint,
    p_max_active integer, p_queue_length integer, p_expected_s real, p_expected_p90_s real,
    p_request_message_id bigint)
RETURNS TABLE (status text, available bigint, free_left integer, waiting integer, job jobs)
LANGUAGE plpgsql AS $$
DECLARE
    term_epoch bigint;
    balance bigint;
    used integer := 0;
    is_free boolean := false;
    charge bigint := p_price;
    running integer := 0;
    queued integer := 0;
    initial job_state := 'created';
    row_ jobs;
BEGIN
    IF p_epoch IS NOT NULL THEN
        SELECT t.epoch INTO term_epoch FROM leader_term t WHERE t.id = 1 FOR SHARE;
        IF term_epoch IS DISTINCT FROM p_epoch THEN
            RETURN QUERY SELECT 'deposed'::text, NULL::bigint, NULL::integer, NULL::integer, NULL::jobs;
            RETURN;
        END IF;
    END IF;
    INSERT INTO wallets (user_id) VALUES (p_user_id) ON CONFLICT (user_id) DO NOTHING;
    SELECT w.available INTO balance FROM wallets w WHERE w.user_id = p_user_id FOR UPDATE;
    SELECT * INTO row_ FROM jobs j WHERE j.request_key = p_request_key;
    IF FOUND THEN
        RETURN QUERY SELECT 'exists'::text, balance, NULL::integer, NULL::integer, row_;
        RETURN;
    END IF;
    IF p_max_active IS NOT NULL THEN
        SELECT count(*) FILTER (WHERE j.state <> 'queued'), count(*) FILTER (WHERE j.state = 'queued')
        INTO running, queued FROM jobs j
        WHERE j.user_id = p_user_id
          AND j.state IN ('queued', 'created', 'submitting', 'submitted', 'succeeded', 'failed');
        IF running >= p_max_active OR queued > 0 THEN
            IF queued >= coalesce(p_queue_length, 0) THEN
                RETURN QUERY SELECT 'queue_full'::text, balance, NULL::integer, queued, NULL::jobs;
                RETURN;
            END IF;
            initial := 'queued';
        END IF;
    END IF;
    IF p_free_per_day > 0 THEN
        SELECT count(*) INTO used FROM jobs j
        WHERE j.user_id = p_user_id AND j.model = p_model AND j.free
          AND j.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
          AND j.state NOT IN ('cancelled', 'abandoned', 'undeliverable', 'delivery_unknown')
          AND j.outcome IS DISTINCT FROM 'failure';
        IF used < p_free_per_day THEN
            is_free := true;
            charge := 0;
        END IF;
    END IF;
    IF charge IS NULL OR (p_agreed IS NOT NULL AND charge > p_agreed) THEN
        RETURN QUERY SELECT 'repriced'::text, balance, 0, NULL::integer, NULL::jobs;
        RETURN;
    END IF;
    IF charge > balance THEN
        RETURN QUERY SELECT 'insufficient'::text, balance, 0, NULL::integer, NULL::jobs;
        RETURN;
    END IF;
    INSERT INTO jobs (request_key, chat_id, user_id, lang, model, input, callback_token,
                      progress_message_id, deadline_at, price, free, kie_credits_quoted, epoch,
                      state, max_active, started_at, expected_s, expected_p90_s, request_message_id)
    VALUES (p_request_key, p_chat_id, p_user_id, p_lang, p_model, p_input, p_callback_token,
            p_progress_message_id, now() + make_interval(secs => p_deadline_s), charge, is_free,
            p_kie_credits, p_epoch, initial, p_max_active,
            CASE WHEN initial = 'created' THEN now() END, p_expected_s, p_expected_p90_s,
            p_request_message_id)
    RETURNING * INTO row_;
    IF charge > 0 THEN
        INSERT INTO ledger (kind, user_id, from_account, to_account, amount, job_id, epoch)
        VALUES ('hold', p_user_id, 'available', 'held', charge, row_.id, p_epoch);
    END IF;
    RETURN QUERY SELECT 'created'::text, balance - charge,
        CASE WHEN is_free THEN greatest(p_free_per_day - used - 1, 0)
             WHEN p_free_per_day > 0 THEN 0 ELSE NULL END,
        CASE WHEN initial = 'queued' THEN queued ELSE NULL END,
        row_;
END $$;

-- A queued job's turn: it moves to `created` when no earlier job of its user is queued and fewer
-- than its max_active of the user's generations run; its deadline starts counting then. Under
-- the user's wallet lock (the one job creation takes), fenced by the epoch.
-- status: 'started' (with others_waiting: later jobs of the user still queued) | 'waiting'
-- (position: 1 = next) | 'not_queued' (it moved on, or the user asked to stop it: the row as it
-- is) | 'deposed' (p_epoch is not current) | 'gone'.
CREATE FUNCTION start_queued_job(p_job_id bigint, p_epoch bigint)
RETURNS TABLE (status text, job_position integer, others_waiting boolean, job jobs)
LANGUAGE plpgsql AS $$
DECLARE
    term_epoch bigint;
    row_ jobs;
    running integer;
    ahead integer;
    behind integer;
BEGIN
    SELECT t.epoch INTO term_epoch FROM leader_term t WHERE t.id = 1 FOR SHARE;
    IF term_epoch IS DISTINCT FROM p_epoch THEN
        RETURN QUERY SELECT 'deposed'::text, NULL::integer, NULL::boolean, NULL::jobs;
        RETURN;
    END IF;
    SELECT * INTO row_ FROM jobs j WHERE j.id = p_job_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'gone'::text, NULL::integer, NULL::boolean, NULL::jobs;
        RETURN;
    END IF;
    INSERT INTO wallets (user_id) VALUES (row_.user_id) ON CONFLICT (user_id) DO NOTHING;
    PERFORM 1 FROM wallets w WHERE w.user_id = row_.user_id FOR UPDATE;
    -- Read again under the lock: each statement here sees what committed before it began.
    SELECT * INTO row_ FROM jobs j WHERE j.id = p_job_id;
    IF row_.state <> 'queued' OR row_.user_stop IS NOT NULL THEN
        RETURN QUERY SELECT 'not_queued'::text, NULL::integer, NULL::boolean, row_;
        RETURN;
    END IF;
    SELECT count(*) FILTER (WHERE j.state <> 'queued'),
           count(*) FILTER (WHERE j.state = 'queued' AND j.id < p_job_id),
           count(*) FILTER (WHERE j.state = 'queued' AND j.id > p_job_id)
    INTO running, ahead, behind FROM jobs j
    WHERE j.user_id = row_.user_id
      AND j.state IN ('queued', 'created', 'submitting', 'submitted', 'succeeded', 'failed');
    IF ahead > 0 OR (row_.max_active IS NOT NULL AND running >= row_.max_active) THEN
        RETURN QUERY SELECT 'waiting'::text, ahead + 1, behind > 0, row_;
        RETURN;
    END IF;
    UPDATE jobs SET state = 'created', epoch = p_epoch, updated_at = now(), started_at = now(),
                    deadline_at = now() + (deadline_at - created_at)
    WHERE id = p_job_id AND state = 'queued'
    RETURNING * INTO row_;
    RETURN QUERY SELECT 'started'::text, 0, behind > 0, row_;
END $$;
