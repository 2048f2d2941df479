-- kiebot schema, version 1: jobs and their events, the callback inbox, the Telegram update
-- inbox, conversations, users and the leader term. Every timestamp is timestamptz.

CREATE TYPE job_state AS ENUM (
    'created', 'submitting', 'submitted', 'succeeded', 'failed',
    'delivering', 'delivered', 'delivery_unknown', 'undeliverable'
);

-- One row: the current leadership term. `epoch` is the fencing token every write checks.
CREATE TABLE leader_term (
    id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    epoch       bigint NOT NULL DEFAULT 0,
    holder      text,
    acquired_at timestamptz
);
INSERT INTO leader_term (id, epoch) VALUES (1, 0);

CREATE TABLE users (
    user_id     bigint PRIMARY KEY,
    lang        text NOT NULL DEFAULT 'en',
    first_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_key           text NOT NULL UNIQUE,
    chat_id               bigint NOT NULL,
    user_id               bigint NOT NULL,
    lang                  text NOT NULL DEFAULT 'en',
    model                 text NOT NULL,
    input                 jsonb NOT NULL,
    state                 job_state NOT NULL DEFAULT 'created',
    outcome               text CHECK (outcome IN ('success', 'failure')),
    callback_token        text NOT NULL,
    kie_task_id           text UNIQUE,
    result_urls           jsonb,
    failure_reason        text,
    progress_message_id   bigint,
    delivered_message_ids jsonb,
    claim_epoch           bigint,
    claimed_at            timestamptz,
    epoch                 bigint,
    deadline_at           timestamptz NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    submitted_at          timestamptz,
    finished_at           timestamptz,
    delivered_at          timestamptz
);
CREATE INDEX jobs_unfinished ON jobs (id)
    WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable');
CREATE INDEX jobs_by_user ON jobs (user_id, created_at DESC);

-- Every state change, written by a trigger: the job's history for /history and post-mortems.
CREATE TABLE job_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     bigint NOT NULL REFERENCES jobs (id),
    from_state job_state,
    to_state   job_state NOT NULL,
    epoch      bigint,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_events_by_job ON job_events (job_id, id);

CREATE FUNCTION record_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_events (job_id, from_state, to_state, epoch) VALUES (NEW.id, NULL, NEW.state, NEW.epoch);
    ELSE
        INSERT INTO job_events (job_id, from_state, to_state, epoch) VALUES (NEW.id, OLD.state, NEW.state, NEW.epoch);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER jobs_insert_event AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION record_job_event();
CREATE TRIGGER jobs_state_event AFTER UPDATE OF state ON jobs
    FOR EACH ROW EXECUTE FUNCTION record_job_event();

-- KIE callbacks, stored before they are answered 200; consumed by the leader's JobActor.
CREATE TABLE callback_inbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id          bigint NOT NULL REFERENCES jobs (id),
    body            jsonb NOT NULL,
    signature_ok    boolean,
    received_at     timestamptz NOT NULL DEFAULT now(),
    received_by     text,
    processed_at    timestamptz,
    processed_epoch bigint
);
CREATE INDEX callback_inbox_unprocessed ON callback_inbox (job_id, id) WHERE processed_at IS NULL;

-- Telegram updates, stored before they are confirmed; processed by the leader.
CREATE TABLE telegram_updates (
    update_id       bigint PRIMARY KEY,
    body            jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    received_by     text,
    processed_at    timestamptz,
    processed_epoch bigint
);
CREATE INDEX telegram_updates_unprocessed ON telegram_updates (update_id) WHERE processed_at IS NULL;

-- Where each user is in the dialogue, so a restart or a new leader continues it.
CREATE TABLE conversations (
    chat_id    bigint NOT NULL,
    user_id    bigint NOT NULL,
    step       text NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, user_id)
);
