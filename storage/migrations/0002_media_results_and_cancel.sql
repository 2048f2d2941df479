-- kiebot schema, version 2: jobs can be cancelled before submission; results keep the
-- Telegram file_ids they were sent with (a resend never downloads again) and text results.
ALTER TYPE job_state ADD VALUE IF NOT EXISTS 'cancelled';
ALTER TABLE jobs ADD COLUMN result_file_ids jsonb;
ALTER TABLE jobs ADD COLUMN result_text text;
