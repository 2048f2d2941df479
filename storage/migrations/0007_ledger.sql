-- kiebot schema, version 7: money. A double-entry, append-only credit ledger; the users' wallets
-- it keeps in the same transaction as its entries; a price on every job, held when the job is
-- created, captured when its result is delivered and released when it fails or is cancelled,
-- all in the transactions that already make those changes; Telegram Stars payments and their
-- refunds; the operator's alerts. Amounts are integer minor units (config/money.py).

-- Where credits can be. `available` and `held` belong to one user (ledger.user_id); the others
-- are the operator's and are derived from the entries when they are needed (`kiebot ledger check`).
CREATE TYPE ledger_account AS ENUM (
    'available', 'held', 'revenue', 'free_allowance', 'purchases', 'grants', 'refunds'
);
-- Why credits moved.
CREATE TYPE ledger_kind AS ENUM (
    'hold',        -- available -> held: a paid job was created
    'capture',     -- held -> revenue: its result was delivered
    'release',     -- held -> available: it failed, was cancelled, timed out or could not be delivered
    'purchase',    -- purchases -> available: a Telegram Stars payment
    'refund',      -- available -> refunds: what a refunded payment took back
    'grant',       -- grants <-> available: the operator's grant (negative takes away)
    'welcome',     -- grants -> available: the welcome credit, once per user
    'referral'     -- grants -> available: a referral bonus, once per side per referred user
);

-- One user's balances, changed only by the trigger below, in the transaction of the entry that
-- changes them. The CHECKs are the rule that no balance goes below zero.
CREATE TABLE wallets (
    user_id     bigint PRIMARY KEY,
    available   bigint NOT NULL DEFAULT 0 CHECK (available >= 0),
    held        bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every movement of credits: `amount` leaves `from_account` and enters `to_account`, so the
-- entries sum to zero by construction. Never updated, never deleted.
CREATE TABLE ledger (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         ledger_kind NOT NULL,
    user_id      bigint NOT NULL,
    from_account ledger_account NOT NULL,
    to_account   ledger_account NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    job_id       bigint REFERENCES jobs (id),
    charge_id    text,
    ref_user_id  bigint,
    reason       text,
    epoch        bigint,
    at           timestamptz NOT NULL DEFAULT now(),
    CHECK (from_account <> to_account),
    CHECK (kind NOT IN ('hold', 'capture', 'release') OR job_id IS NOT NULL),
    CHECK (kind NOT IN ('purchase', 'refund') OR charge_id IS NOT NULL)
);
-- Idempotency lives here: one hold per job, resolved at most once; a Telegram charge credited
-- once and refunded once; the welcome credit once per user; a referral bonus once per side.
CREATE UNIQUE INDEX ledger_one_hold ON ledger (job_id) WHERE kind = 'hold';
CREATE UNIQUE INDEX ledger_one_resolution ON ledger (job_id) WHERE kind IN ('capture', 'release');
CREATE UNIQUE INDEX ledger_purchase_once ON ledger (charge_id) WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_refund_once ON ledger (charge_id) WHERE kind = 'refund';
CREATE UNIQUE INDEX ledger_welcome_once ON ledger (user_id) WHERE kind = 'welcome';
CREATE UNIQUE INDEX ledger_referral_once ON ledger (ref_user_id, user_id) WHERE kind = 'referral';
CREATE INDEX ledger_by_user ON ledger (user_id, id DESC);

CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();

-- Each entry moves the user's wallet in its own transaction (a wallet row is made on first use).
CREATE FUNCTION ledger_moves_wallet() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wallets (user_id) VALUES (NEW.user_id) ON CONFLICT (user_id) DO NOTHING;
    UPDATE wallets SET
        available = available
            + CASE WHEN NEW.to_account = 'available' THEN NEW.amount ELSE 0 END
            - CASE WHEN NEW.from_account = 'available' THEN NEW.amount ELSE 0 END,
        held = held
            + CASE WHEN NEW.to_account = 'held' THEN NEW.amount ELSE 0 END
            - CASE WHEN NEW.from_account = 'held' THEN NEW.amount ELSE 0 END,
        updated_at = now()
    WHERE user_id = NEW.user_id;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_wallet AFTER INSERT ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_moves_wallet();

-- What a job costs the user (0 for a free generation), whether it used the free tier, and what
-- KIE should charge and did charge for it (creditsConsumed), so that stale prices show.
ALTER TABLE jobs ADD COLUMN price bigint NOT NULL DEFAULT 0 CHECK (price >= 0);
ALTER TABLE jobs ADD COLUMN free boolean NOT NULL DEFAULT false;
ALTER TABLE jobs ADD COLUMN kie_credits_quoted numeric;
ALTER TABLE jobs ADD COLUMN kie_credits_consumed numeric;
CREATE INDEX jobs_free_by_user ON jobs (user_id, model, created_at) WHERE free;

-- A job's hold is resolved by the same UPDATE that records its fate, so no transaction is added
-- to the job path and no crash can fall between the two: delivered with a result captures it;
-- any other final state, or a failure, releases it. Fenced like the UPDATE that fires it.
CREATE FUNCTION job_resolves_hold() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    held_amount bigint;
    resolution ledger_kind;
BEGIN
    IF NEW.state = 'delivered' AND NEW.outcome = 'success' THEN
        resolution := 'capture';
    ELSIF NEW.state IN ('failed', 'cancelled', 'undeliverable', 'delivery_unknown')
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
CREATE TRIGGER jobs_resolve_hold AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION job_resolves_hold();

-- Create a job and hold its price in one transaction (one call), fenced by the leader epoch.
-- status: 'created' | 'exists' (the request key made that job already) | 'insufficient' (the
-- available balance is below the price; nothing written) | 'repriced' (no free generation is
-- left, and the price is above p_agreed, the most the user agreed to pay, or there is no price:
-- p_price NULL; nothing written) |
-- 'deposed' (p_epoch is not current; nothing written). With free generations of this model left
-- today (p_free_per_day), the job is free. Jobs of one user are created one at a time (their wallet row is locked), so the free tier
-- and the balance are counted without a race.
CREATE FUNCTION create_job_with_hold(
    p_request_key text, p_chat_id bigint, p_user_id bigint, p_lang text, p_model text,
    p_input jsonb, p_callback_token text, p_progress_message_id bigint, p_deadline_s double precision,
    p_price bigint, p_free_per_day integer, p_kie_credits numeric, p_epoch bigint, p_agreed bigint)
RETURNS TABLE (status text, available bigint, free_left integer, job jobs)
LANGUAGE plpgsql AS $$
DECLARE
    term_epoch bigint;
    balance bigint;
    used integer := 0;
    is_free boolean := false;
    charge bigint := p_price;
    row_ jobs;
BEGIN
    IF p_epoch IS NOT NULL THEN
        SELECT t.epoch INTO term_epoch FROM leader_term t WHERE t.id = 1 FOR SHARE;
        IF term_epoch IS DISTINCT FROM p_epoch THEN
            RETURN QUERY SELECT 'deposed'::text, NULL::bigint, NULL::integer, NULL::jobs;
            RETURN;
        END IF;
    END IF;
    INSERT INTO wallets (user_id) VALUES (p_user_id) ON CONFLICT (user_id) DO NOTHING;
    SELECT w.available INTO balance FROM wallets w WHERE w.user_id = p_user_id FOR UPDATE;
    SELECT * INTO row_ FROM jobs j WHERE j.request_key = p_request_key;
    IF FOUND THEN
        RETURN QUERY SELECT 'exists'::text, balance, NULL::integer, row_;
        RETURN;
    END IF;
    IF p_free_per_day > 0 THEN
        SELECT count(*) INTO used FROM jobs j
        WHERE j.user_id = p_user_id AND j.model = p_model AND j.free
          AND j.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
          AND j.state NOT IN ('cancelled', 'undeliverable', 'delivery_unknown')
          AND j.outcome IS DISTINCT FROM 'failure';
        IF used < p_free_per_day THEN
            is_free := true;
            charge := 0;
        END IF;
    END IF;
    IF charge IS NULL OR (p_agreed IS NOT NULL AND charge > p_agreed) THEN
        RETURN QUERY SELECT 'repriced'::text, balance, 0, NULL::jobs;
        RETURN;
    END IF;
    IF charge > balance THEN
        RETURN QUERY SELECT 'insufficient'::text, balance, 0, NULL::jobs;
        RETURN;
    END IF;
    INSERT INTO jobs (request_key, chat_id, user_id, lang, model, input, callback_token,
                      progress_message_id, deadline_at, price, free, kie_credits_quoted, epoch)
    VALUES (p_request_key, p_chat_id, p_user_id, p_lang, p_model, p_input, p_callback_token,
            p_progress_message_id, now() + make_interval(secs => p_deadline_s), charge, is_free,
            p_kie_credits, p_epoch)
    RETURNING * INTO row_;
    IF charge > 0 THEN
        INSERT INTO ledger (kind, user_id, from_account, to_account, amount, job_id, epoch)
        VALUES ('hold', p_user_id, 'available', 'held', charge, row_.id, p_epoch);
    END IF;
    RETURN QUERY SELECT 'created'::text, balance - charge,
        CASE WHEN is_free THEN greatest(p_free_per_day - used - 1, 0)
             WHEN p_free_per_day > 0 THEN 0 ELSE NULL END,
        row_;
END $$;

-- Telegram Stars payments: one row per telegram_payment_charge_id, credited once (the ledger's
-- purchase entry is unique on the charge id too). A refund goes through the outbox columns.
CREATE TABLE star_payments (
    charge_id           text PRIMARY KEY,
    provider_charge_id  text,
    user_id             bigint NOT NULL,
    package_id          text NOT NULL,
    stars               integer NOT NULL CHECK (stars > 0),
    credits             bigint NOT NULL CHECK (credits > 0),
    state               text NOT NULL DEFAULT 'credited'
                        CHECK (state IN ('credited', 'refund_requested', 'refunded', 'refund_failed')),
    paid_at             timestamptz NOT NULL DEFAULT now(),
    announced_at        timestamptz,        -- the user was told (a redelivery after that says nothing)
    refund_reason       text,
    refund_taken        bigint,
    refund_requested_at timestamptz,
    refund_attempts     integer NOT NULL DEFAULT 0,
    refund_next_at      timestamptz,
    refund_error        text,
    refunded_at         timestamptz
);
CREATE INDEX star_payments_by_user ON star_payments (user_id, paid_at DESC);
CREATE INDEX star_payments_refunds_due ON star_payments (refund_next_at) WHERE state = 'refund_requested';

-- Who brought whom (a /start ref_<code> link), once per user, never oneself.
CREATE TABLE referrals (
    user_id     bigint PRIMARY KEY,
    referrer_id bigint NOT NULL CHECK (referrer_id <> user_id),
    at          timestamptz NOT NULL DEFAULT now()
);

-- Payments present on one side only, found by the reconciliation with getStarTransactions.
CREATE TABLE payment_discrepancies (
    charge_id   text PRIMARY KEY,
    side        text NOT NULL CHECK (side IN ('telegram_only', 'ledger_only', 'refund_mismatch')),
    detail      text NOT NULL,
    found_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);

-- The operator's alerts sent to ADMIN_IDS, at most once per period per kind, across instances.
CREATE TABLE operator_alerts (
    kind      text PRIMARY KEY,
    sent_at   timestamptz NOT NULL
);

-- A Telegram Stars payment, credited once whatever the number of redeliveries, restarts or
-- instances (star_payments' key and the ledger's unique purchase entry), with the referral
-- bonuses of a referred user's first purchase, in one transaction.
-- status: 'credited' | 'duplicate' (this charge was credited before) | 'deposed'.
CREATE FUNCTION credit_star_payment(
    p_charge_id text, p_provider_charge_id text, p_user_id bigint, p_package_id text,
    p_stars integer, p_credits bigint, p_referrer_bonus bigint, p_referred_bonus bigint,
    p_epoch bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    term_epoch bigint;
    referrer bigint;
BEGIN
    IF p_epoch IS NOT NULL THEN
        SELECT t.epoch INTO term_epoch FROM leader_term t WHERE t.id = 1 FOR SHARE;
        IF term_epoch IS DISTINCT FROM p_epoch THEN
            RETURN 'deposed';
        END IF;
    END IF;
    INSERT INTO star_payments (charge_id, provider_charge_id, user_id, package_id, stars, credits)
    VALUES (p_charge_id, p_provider_charge_id, p_user_id, p_package_id, p_stars, p_credits)
    ON CONFLICT (charge_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'duplicate';
    END IF;
    INSERT INTO ledger (kind, user_id, from_account, to_account, amount, charge_id, epoch)
    VALUES ('purchase', p_user_id, 'purchases', 'available', p_credits, p_charge_id, p_epoch);
    IF NOT EXISTS (SELECT 1 FROM star_payments s WHERE s.user_id = p_user_id AND s.charge_id <> p_charge_id) THEN
        SELECT r.referrer_id INTO referrer FROM referrals r WHERE r.user_id = p_user_id;
        IF referrer IS NOT NULL THEN
            IF p_referred_bonus > 0 THEN
                INSERT INTO ledger (kind, user_id, from_account, to_account, amount, ref_user_id, reason, epoch)
                VALUES ('referral', p_user_id, 'grants', 'available', p_referred_bonus, p_user_id,
                        'referred by ' || referrer, p_epoch)
                ON CONFLICT (ref_user_id, user_id) WHERE kind = 'referral' DO NOTHING;
            END IF;
            IF p_referrer_bonus > 0 THEN
                INSERT INTO ledger (kind, user_id, from_account, to_account, amount, ref_user_id, reason, epoch)
                VALUES ('referral', referrer, 'grants', 'available', p_referrer_bonus, p_user_id,
                        'referred ' || p_user_id, p_epoch)
                ON CONFLICT (ref_user_id, user_id) WHERE kind = 'referral' DO NOTHING;
            END IF;
        END IF;
    END IF;
    RETURN 'credited';
END $$;

-- An operator's grant (a negative amount takes away), or the welcome credit (once per user).
-- status: 'granted' | 'insufficient' (it would take the available balance below zero; nothing
-- written) | 'already' (the welcome credit was granted before).
CREATE FUNCTION grant_credits(p_user_id bigint, p_amount bigint, p_kind ledger_kind, p_reason text)
RETURNS TABLE (status text, available bigint) LANGUAGE plpgsql AS $$
DECLARE
    balance bigint;
BEGIN
    INSERT INTO wallets (user_id) VALUES (p_user_id) ON CONFLICT (user_id) DO NOTHING;
    SELECT w.available INTO balance FROM wallets w WHERE w.user_id = p_user_id FOR UPDATE;
    IF p_amount < 0 AND balance + p_amount < 0 THEN
        RETURN QUERY SELECT 'insufficient'::text, balance;
        RETURN;
    END IF;
    IF p_amount <> 0 THEN
        INSERT INTO ledger (kind, user_id, from_account, to_account, amount, reason)
        VALUES (p_kind, p_user_id,
                CASE WHEN p_amount > 0 THEN 'grants' ELSE 'available' END::ledger_account,
                CASE WHEN p_amount > 0 THEN 'available' ELSE 'grants' END::ledger_account,
                abs(p_amount), p_reason)
        ON CONFLICT (user_id) WHERE kind = 'welcome' DO NOTHING;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'already'::text, balance;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT 'granted'::text, balance + p_amount;
END $$;

-- Ask for a Stars payment to be refunded: take back what is still available of its credits (no
-- more), and queue the refundStarPayment call in the outbox, in one transaction.
-- status: 'requested' | 'already' (requested or refunded before) | 'unknown' (no such charge).
CREATE FUNCTION request_star_refund(p_charge_id text, p_reason text)
RETURNS TABLE (status text, taken bigint, user_id bigint) LANGUAGE plpgsql AS $$
DECLARE
    pay star_payments;
    balance bigint;
    took bigint;
BEGIN
    SELECT * INTO pay FROM star_payments s WHERE s.charge_id = p_charge_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    IF pay.state <> 'credited' THEN
        RETURN QUERY SELECT 'already'::text, pay.refund_taken, pay.user_id;
        RETURN;
    END IF;
    SELECT w.available INTO balance FROM wallets w WHERE w.user_id = pay.user_id FOR UPDATE;
    took := least(coalesce(balance, 0), pay.credits);
    IF took > 0 THEN
        INSERT INTO ledger (kind, user_id, from_account, to_account, amount, charge_id, reason)
        VALUES ('refund', pay.user_id, 'available', 'refunds', took, p_charge_id, p_reason);
    END IF;
    UPDATE star_payments SET state = 'refund_requested', refund_reason = p_reason, refund_taken = took,
        refund_requested_at = now(), refund_next_at = now()
    WHERE charge_id = p_charge_id;
    RETURN QUERY SELECT 'requested'::text, took, pay.user_id;
END $$;
