-- kiebot schema, version 4: a Telegram update that cannot be decoded or handled is set aside
-- with a short reason (and counts as processed), so it never blocks the updates after it.
ALTER TABLE telegram_updates ADD COLUMN IF NOT EXISTS failure text;
