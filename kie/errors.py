"""KIE errors, one class per action the caller must take. The docstring is the default message."""
from __future__ import annotations


class KieError(Exception):
    """KIE did not do what was asked."""

    def __init__(self, message: str | None = None, *, code: int | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.code = code


class KieRetryLater(KieError):
    """KIE is busy, rate-limited, in maintenance or unreachable; nothing was done. Retry later."""


class KieJobFailed(KieError):
    """KIE refused or failed this job for good; tell the user why and do not retry."""

    def __init__(self, reason: str, *, code: int | None = None) -> None:
        super().__init__(reason, code=code)
        self.reason = reason


class KieAlert(KieError):
    """The account needs an operator: bad key, no credits, sub-key cap. Stop and alert."""


class KieNoCredit(KieAlert):
    """The operator's KIE account has too few credits (402): nothing was created or charged."""


class KieSubmitOutcomeUnknown(KieError):
    """createTask was sent but its answer was lost; KIE may have the task. Never resubmit blindly."""
