"""Map third-party client errors to Temporal's retry semantics (4xx: give up; 429/5xx/timeouts: retry)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from integrations.kommo.errors import KommoError
from integrations.llm import LlmError


def to_application_error(exc: KommoError | LlmError) -> ApplicationError:
    """An ApplicationError carrying the client's retryability and Retry-After."""
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
    return ApplicationError(
        f"{type(exc).__name__}: {exc}", type=type(exc).__name__, non_retryable=not exc.retryable,
        next_retry_delay=delay,
    )
