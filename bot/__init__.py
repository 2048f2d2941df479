"""The Telegram side: the dialogue handlers, callback data and the sending bridge for actors."""
