-- kiebot schema, version 3: a delivery made of several messages records each part it sent
-- (message and file ids), so a retry or a new leader resumes from the first part not sent;
-- a claim whose holder knows nothing of it is on the wire can be released for the next
-- leader to take at once, without the grace period or the at_most_once parking.
ALTER TABLE jobs ADD COLUMN delivery_parts jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE jobs ADD COLUMN claim_released boolean NOT NULL DEFAULT false;
