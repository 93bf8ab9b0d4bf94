"""Frozen configuration objects, validated on construction, and the loaders that build them from files
(the mapping TOML here; credentials in credentials.py). No network."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from .errors import ConfigError

Api = Literal["dps", "xcore"]
OnExisting = Literal["create", "skip", "update", "fail"]
ON_EXISTING = ("create", "skip", "update", "fail")
PRODUCTION_BASE_URL = "https://platform.adobe.io"
# --rate auto never goes above this unless told (--max-rate): Adobe publishes no create limit; 50/s is
# 3,000 offers a minute, a sandbox's 10,000 in under four minutes.
DEFAULT_MAX_RATE = 50.0
PRODUCTION_IMS_URL = "https://ims-na1.adobelogin.com"
DEFAULT_SCOPES = ("openid", "AdobeID", "read_organizations", "additional_info.projectedProductContext",
                  "session")


@dataclass(frozen=True)
class RateLimit:
    """Requests per second, evenly spaced (no burst at start). Fixed, `rate` is the most ever sent;
    with `auto`, the pace is found from the answers (ratelimit.Pace) and `rate` is its ceiling
    (--max-rate).

    `safety` widens the spacing a little so that jitter between our clock and the server's arrival
    times never shows the server more than `rate` requests in any 1-second window."""

    rate: float = 10.0
    safety: float = 0.02
    min_rate: float = 0.5  # the floor the pace never goes below
    auto: bool = False

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ConfigError(f"--{'max-rate' if self.auto else 'rate'} must be positive, got {self.rate:g}")
        if not 0 <= self.safety < 0.5:
            raise ConfigError("rate safety margin must be between 0 and 0.5")

    @property
    def interval(self) -> float:
        return (1.0 + self.safety) / self.rate


@dataclass(frozen=True)
class RetryPolicy:
    """Retries stop on attempts or on the deadline, whichever comes first."""

    attempts: int = 6
    deadline: float = 300.0  # seconds one row may spend in retries
    base: float = 0.5  # first backoff, doubled each attempt
    cap: float = 30.0  # longest single wait
    timeout: float = 30.0  # one request
    jitter: bool = True  # tests switch jitter (not waits) off for exact figures

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"--retries must allow at least 1 attempt, got {self.attempts}")
        if self.timeout <= 0 or self.deadline <= 0:
            raise ConfigError("--timeout and --deadline must be positive")


@dataclass(frozen=True)
class Credentials:
    """Either a ready access token, or client credentials for IMS. Secrets never print."""

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    org_id: str | None = None
    sandbox: str = "prod"
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    access_token: str | None = field(default=None, repr=False)

    def check(self) -> None:
        missing = [n for n, v in (("client id", self.client_id), ("IMS org id", self.org_id)) if not v]
        if not self.access_token and not self.client_secret:
            missing.append("client secret or access token")
        if missing:
            raise ConfigError(
                f"missing credentials: {', '.join(missing)}",
                hint="pass --client-id/--client-secret/--org-id or set BULKOFFERS_CLIENT_ID, "
                     "BULKOFFERS_CLIENT_SECRET, BULKOFFERS_ORG_ID; or rehearse with --emulator",
            )

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.client_secret, self.access_token) if s)


@dataclass(frozen=True)
class Target:
    api: Api = "dps"
    base_url: str = PRODUCTION_BASE_URL
    ims_url: str = PRODUCTION_IMS_URL
    container_id: str | None = None  # xcore only; looked up when absent

    def __post_init__(self) -> None:
        if self.api not in ("dps", "xcore"):
            raise ConfigError(f"--api must be dps or xcore, got {self.api!r}")
        for name, url in (("--base-url", self.base_url), ("--ims-url", self.ims_url)):
            if not url.startswith(("https://", "http://")):
                raise ConfigError(f"{name} must be an http(s) URL, got {url!r}")
            host = urlsplit(url).hostname or ""
            # Tokens and secrets travel in these requests: plain http only to this machine (the emulator).
            if url.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
                raise ConfigError(f"{name} {url} is plain http to another host; secrets would travel unencrypted",
                                  hint="use https:// (TLS is always verified); plain http is for 127.0.0.1 only")


@dataclass(frozen=True)
class ReadOptions:
    sheet: str | int | None = None  # name or 0-based index; first sheet when None
    delimiter: str | None = None  # sniffed when None
    chunk_rows: int = 2_000  # CSV rows read at once in pass 1 and validate: memory flat in file size
    excel_engine: str | None = None  # pandas engine for spreadsheets; calamine when installed


@dataclass(frozen=True)
class MappingSpec:
    """Extra header names mapped onto canonical fields, and constant defaults (from --mapping TOML)."""

    columns: tuple[tuple[str, str], ...] = ()  # (header as in the file, canonical field)
    defaults: tuple[tuple[str, str], ...] = ()  # (canonical field, value used when the cell is empty)


def load_mapping(path: Path | None) -> MappingSpec:
    """`--mapping FILE`: [columns] maps headers to fields, [defaults] sets constant values."""
    if path is None:
        return MappingSpec()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read mapping file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"mapping file {path} is not valid TOML: {exc}") from exc
    unknown = set(data) - {"columns", "defaults"}
    if unknown:
        raise ConfigError(f"mapping file {path}: unknown table(s) {', '.join(sorted(unknown))}",
                          hint="use [columns] (header = field) and [defaults] (field = value)")
    columns = tuple((str(h), str(f)) for h, f in data.get("columns", {}).items())
    defaults = tuple((str(f), str(v)) for f, v in data.get("defaults", {}).items())
    return MappingSpec(columns, defaults)


# Adobe promises no read-after-write for list and search; search indexes of this kind show a write
# after about a second and several under load. Ten seconds covers that with margin; it costs a row in
# doubt nothing while other rows go out, and a run at most ten seconds at its end (README, "settle").
DEFAULT_SETTLE = 10.0


def check_settle(settle: float) -> None:
    if not 0 <= settle <= 3600:
        raise ConfigError(f"--settle must be between 0 and 3600 seconds, got {settle:g}")


def workers_for(rate: RateLimit, concurrency: int | None) -> int:
    """The one rule for how many requests may be in flight: `--concurrency`, or enough to keep `rate`
    requests going at up to ~1.5 s latency, within reason."""
    if concurrency is not None:
        return concurrency
    return max(2, min(256, math.ceil(rate.rate * 1.5) + 1))


@dataclass(frozen=True)
class ApiConfig:
    """Where and how every networked command talks to the API (import, rollback, check-auth, ...)."""

    target: Target = Target()
    credentials: Credentials = Credentials()
    rate: RateLimit = RateLimit()
    retry: RetryPolicy = RetryPolicy()
    concurrency: int | None = None
    settle: float = DEFAULT_SETTLE

    @property
    def workers(self) -> int:
        return workers_for(self.rate, self.concurrency)

    def __post_init__(self) -> None:
        check_settle(self.settle)


@dataclass(frozen=True)
class ImportConfig:
    input: Path
    results: Path
    failures: Path
    target: Target = Target()
    credentials: Credentials = Credentials()
    rate: RateLimit = RateLimit()
    retry: RetryPolicy = RetryPolicy()
    concurrency: int | None = None  # derived from the rate when None
    read: ReadOptions = ReadOptions()
    mapping: MappingSpec = MappingSpec()
    default_status: str = "approved"
    force: bool = False
    payloads_out: Path | None = None
    on_existing: OnExisting = "skip"  # what a row does whose offer name exists in the sandbox (sandbox.decide)
    preflight: bool = True  # check rows against the sandbox's placements and guardrail before the first send
    settle: float = DEFAULT_SETTLE  # seconds after a lost answer before not finding the offer proves it absent

    @property
    def workers(self) -> int:
        return workers_for(self.rate, self.concurrency)

    @property
    def api_config(self) -> ApiConfig:
        return ApiConfig(self.target, self.credentials, self.rate, self.retry, self.concurrency, self.settle)

    def __post_init__(self) -> None:
        if self.concurrency is not None and not 1 <= self.concurrency <= 1024:
            raise ConfigError(f"--concurrency must be between 1 and 1024, got {self.concurrency}")
        check_settle(self.settle)
        if self.on_existing not in ON_EXISTING:
            raise ConfigError(f"--on-existing must be one of {', '.join(ON_EXISTING)}, got {self.on_existing!r}")
        if self.default_status not in ("draft", "approved", "archived"):
            raise ConfigError(f"--status must be draft, approved or archived, got {self.default_status!r}")
