"""The Telegram side: the dialogue handlers, prices and payments, callback data, flood control and
the sending bridge."""
import os

# PTB 22.2+ returns durations (RetryAfter.retry_after, …) as timedelta when this is set and
# warns otherwise; our code handles timedelta, so opt in rather than depend on a deprecation.
os.environ.setdefault("PTB_TIMEDELTA", "1")
