-- kiebot schema, version 10: a referral's notice is told once it reached the invited user.
-- `/start ref_<code>` records the referral, then sends the welcome that says so; the notice is
-- shown while the referral is untold, so a welcome that failed (a 5xx, a lost answer) is said
-- again, with the notice, instead of the notice being lost with the row's first insert.

-- When the invited user was told of the invitation (or could not be: a blocked chat). NULL:
-- not yet. Referrals recorded before this version were answered with their notice then.
ALTER TABLE referrals ADD COLUMN told_at timestamptz;
UPDATE referrals SET told_at = at WHERE told_at IS NULL;
