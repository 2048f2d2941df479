-- kiebot schema, version 6: a failure is stored as a code plus a detail and put into words
-- (in the user's language) only when it is sent; rows from before keep their failure_reason
-- sentence, which is shown as it is.
ALTER TABLE jobs ADD COLUMN failure_code text;
ALTER TABLE jobs ADD COLUMN failure_detail text;
