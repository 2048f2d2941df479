-- kiebot schema, version 5: indexes for the retention duty and for cheap /metrics gauges.
-- Retention finds processed inbox rows and old job events by age without reading the rest of
-- the table. The gauges count unfinished jobs by state (and find the oldest) from an index that
-- holds only unfinished jobs, so a scrape costs O(unfinished jobs), not O(all jobs ever);
-- jobs_unfinished is rebuilt without cancelled jobs (it predates 'cancelled' and so kept every
-- cancelled job for ever), so that neither partial index grows with finished work.
CREATE INDEX jobs_unfinished_by_state ON jobs (state, created_at)
    WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled');
DROP INDEX jobs_unfinished;
CREATE INDEX jobs_unfinished ON jobs (id)
    WHERE state NOT IN ('delivered', 'delivery_unknown', 'undeliverable', 'cancelled');
CREATE INDEX telegram_updates_processed_at ON telegram_updates (processed_at)
    WHERE processed_at IS NOT NULL;
CREATE INDEX callback_inbox_processed_at ON callback_inbox (processed_at)
    WHERE processed_at IS NOT NULL;
CREATE INDEX job_events_at ON job_events (at);
