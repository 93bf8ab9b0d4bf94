"""Classification and backoff as tables."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from bulkoffers.config import RetryPolicy
from bulkoffers.answers import Answer, Verdict, backoff, classify, excerpt, parse_retry_after


@pytest.mark.parametrize("answer,verdict", [
    (Answer(201), Verdict.OK),
    (Answer(200), Verdict.OK),
    (Answer(429), Verdict.RETRY),
    (Answer(500), Verdict.RETRY),
    (Answer(502), Verdict.RETRY),
    (Answer(503), Verdict.RETRY),
    (Answer(504), Verdict.RETRY),
    (Answer(408), Verdict.RETRY),
    (Answer(501), Verdict.ROW),
    (Answer(400), Verdict.ROW),
    (Answer(404), Verdict.ROW),
    (Answer(409), Verdict.ROW),
    (Answer(415), Verdict.ROW),
    (Answer(401), Verdict.REFRESH),
    (Answer(403), Verdict.FATAL),
    (Answer(None, transport="timeout"), Verdict.RETRY),
    (Answer(None, transport="disconnected"), Verdict.RETRY),
    (Answer(None, transport="refused"), Verdict.RETRY),
])
def test_classify(answer: Answer, verdict: Verdict) -> None:
    """Each kind of answer gets its verdict: created, retry (429, 5xx but 501, 408, lost), refresh (401),
    row refused (other 4xx), fatal (403, a missing endpoint)."""
    assert classify(answer) is verdict


def test_only_lost_answers_are_in_doubt() -> None:
    """A timeout or dropped connection may have stored the offer (in doubt); a refused connection or an HTTP
    answer did not."""
    assert Answer(None, transport="timeout").in_doubt and Answer(None, transport="disconnected").in_doubt
    assert not Answer(None, transport="refused").in_doubt and not Answer(500).in_doubt


def test_retry_after_seconds_and_http_date() -> None:
    """Retry-After is read as seconds or as an HTTP date (a past date is no wait); anything else is ignored."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:07 GMT", now) == pytest.approx(7.0)
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_is_capped_exponential_with_jitter() -> None:
    """Waits double from the base up to the cap; Retry-After is honoured within the cap; jitter spreads
    waits over the upper half of the step."""
    policy = RetryPolicy(base=0.5, cap=4.0, jitter=False)
    assert [backoff(policy, a) for a in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff(policy, 1, retry_after=10) == 4.0  # Retry-After honoured, within the cap
    assert backoff(policy, 3, retry_after=0.2) == 0.2
    jittered = [backoff(RetryPolicy(base=1, cap=8), 3, rng=random.Random(i)) for i in range(50)]
    assert all(2.0 <= w <= 4.0 for w in jittered) and len(set(jittered)) > 40


def test_excerpt_is_short_and_readable() -> None:
    """An error body becomes one short line: status, title and detail, whitespace folded, at most 300
    characters."""
    body = {"type": "x", "title": "Bad Request", "status": 400, "detail": "name is required"}
    assert excerpt(Answer(400, body)) == "HTTP 400: Bad Request: name is required"
    assert excerpt(Answer(502, "<html>  bad\n gateway </html>")) == "HTTP 502: <html> bad gateway </html>"
    assert len(excerpt(Answer(400, {"detail": "x" * 1000}))) == 300
    assert excerpt(Answer(None, transport="timeout")) == "no answer before the timeout"
