"""What an answer means: pure classification (retry, refresh, fatal, row), backoff and Retry-After,
readable excerpts. Tested as tables. The attempt loop that acts on it is in sender.py."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any

from .config import RetryPolicy


class Verdict(Enum):
    OK = "ok"
    RETRY = "retry"  # 429, 5xx, 408, timeouts, dropped connections
    REFRESH = "refresh"  # 401: refresh the token once, then send again
    FATAL = "fatal"  # 403, or 401 after a refresh: every other row would fail too
    ROW = "row"  # any other 4xx: this row is wrong, others may be fine


@dataclass(frozen=True)
class Answer:
    """What one request produced. `status` is None when no HTTP answer came (see `transport`)."""

    status: int | None
    body: Any = None
    retry_after: str | None = None
    transport: str | None = None  # "timeout", "disconnected", "refused": what went wrong below HTTP
    elapsed: float = 0.0

    @property
    def in_doubt(self) -> bool:
        """The request may have been processed although we have no answer: look before sending again."""
        return self.status is None and self.transport in ("timeout", "disconnected")


def classify(answer: Answer) -> Verdict:
    status = answer.status
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.OK
    if status == 401:
        return Verdict.REFRESH
    if status == 403:
        return Verdict.FATAL
    if status in (408, 425, 429) or (status >= 500 and status != 501):
        return Verdict.RETRY
    return Verdict.ROW


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def backoff(policy: RetryPolicy, attempt: int, retry_after: float | None = None,
            rng: random.Random | None = None) -> float:
    """Wait before attempt `attempt + 1`: Retry-After when the server gave one (capped), else capped
    exponential with full jitter."""
    if retry_after is not None:
        return min(retry_after, policy.cap)
    ceiling = min(policy.cap, policy.base * (2 ** (attempt - 1)))
    if not policy.jitter:
        return ceiling
    return (rng or random).uniform(ceiling / 2, ceiling)


def excerpt(answer: Answer, limit: int = 300) -> str:
    """A short readable reason for the results file."""
    if answer.status is None:
        return {"timeout": "no answer before the timeout", "disconnected": "connection dropped without an answer",
                "refused": "could not connect"}.get(answer.transport or "", answer.transport or "no answer")
    body = answer.body
    text = ""
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("title", "detail", "message", "error_description") if body.get(k)]
        report = body.get("report")
        if not parts and report:
            parts.append(json.dumps(report)[:limit])
        text = ": ".join(dict.fromkeys(parts))
    elif body:
        text = " ".join(str(body).split())
    text = text or "no details"
    reason = f"HTTP {answer.status}: {text}"
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def auth_hint(answer: Answer) -> str:
    """Which header or setting to fix after a 401 that survived a refresh, or a 403."""
    text = excerpt(answer, limit=1000).lower()
    if answer.status == 401:
        return "the access token is refused even after a refresh: check --client-id/--client-secret, " \
               "or get a new --access-token"
    if "api key" in text:
        return "x-api-key: --client-id must be the client id of the OAuth server-to-server credential"
    if "org" in text:
        return "x-gw-ims-org-id: --org-id must be the organization (...@AdobeOrg) that owns the credential"
    if "sandbox" in text:
        return "x-sandbox-name: the credential's product profile has no access to this --sandbox"
    return ("the credential lacks permission: give its Developer Console project the Experience Platform API "
            "with a product profile that can manage offers in this sandbox, and check --scopes")


def receipt_ids(body: Any) -> tuple[str, str]:
    """(id, @id) from a create receipt: DPS answers `id`, xcore `instanceId` and `@id`."""
    if not isinstance(body, dict):
        return "", ""
    offer_id = str(body.get("id") or body.get("instanceId") or "")
    return offer_id, str(body.get("@id") or offer_id)
