"""Frozen configuration of the emulator: credentials it accepts, guardrails, faults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

# The embedded default credentials: `bulkoffers import --emulator` and a bare
# `bulkoffers emulator` agree on these, so a newcomer needs no secrets at all.
DEFAULT_CLIENT_ID = "bulkoffers-emulator"
DEFAULT_CLIENT_SECRET = "emulator-secret"
DEFAULT_ORG_ID = "EMULATOR0000000000000000@AdobeOrg"
DEFAULT_SANDBOX = "prod"

FALLBACK_SCHEMA = "https://ns.adobe.com/experience/offer-management/fallback-offer;version=0.1"
PLACEMENT_SCHEMA = "https://ns.adobe.com/experience/offer-management/offer-placement;version=0.4"
_WEB, _EMAIL, _MOBILE = (f"https://ns.adobe.com/xdm/channel-types/{c}" for c in ("web", "email", "mobile"))
# The placements every sandbox starts with. The first two are the ones Adobe's own examples use (a web
# image placement for the DPS create, "Placement one" for the placement and xcore examples).
DEFAULT_PLACEMENTS: tuple[dict[str, str], ...] = (
    {"id": "offerPlacement1234", "at_id": "xcore:offer-placement:124e0be5699743d1", "name": "Web image",
     "channel": _WEB, "component_type": "imagelink"},
    {"id": "offerPlacement5678", "at_id": "xcore:offer-placement:124e0be5699743d3", "name": "Placement one",
     "description": "Web HTML", "channel": _WEB, "component_type": "html"},
    {"id": "offerPlacementWeb01", "at_id": "xcore:offer-placement:1250c9f1a2b3c4d6", "name": "Web banner",
     "channel": _WEB, "component_type": "imagelink"},
    {"id": "offerPlacementWebText01", "at_id": "xcore:offer-placement:1250c9f1a2b3c4d7", "name": "Web text",
     "channel": _WEB, "component_type": "text"},
    {"id": "offerPlacementWebJson01", "at_id": "xcore:offer-placement:1250c9f1a2b3c4d8", "name": "Web JSON",
     "channel": _WEB, "component_type": "json"},
    {"id": "offerPlacementMail01", "at_id": "xcore:offer-placement:1250c9f1a2b3c4d9", "name": "Email body",
     "channel": _EMAIL, "component_type": "html"},
    {"id": "offerPlacementMailImage01", "at_id": "xcore:offer-placement:1250c9f1a2b3c4da", "name": "Email banner",
     "channel": _EMAIL, "component_type": "imagelink"},
    {"id": "offerPlacementApp01", "at_id": "xcore:offer-placement:1250c9f1a2b3c4db", "name": "App message",
     "channel": _MOBILE, "component_type": "text"},
    {"id": "offerPlacementAppImage01", "at_id": "xcore:offer-placement:1250c9f1a2b3c4dc", "name": "App banner",
     "channel": _MOBILE, "component_type": "imagelink"},
)
COMPONENT_TYPES = ("imagelink", "html", "text", "json")


@dataclass(frozen=True)
class Faults:
    """What the emulator does wrong on purpose. Rates are probabilities per request (0..1)."""

    latency_ms: float = 0.0  # fixed delay before every API answer
    jitter_ms: float = 0.0  # plus a uniform random 0..jitter_ms
    rate_limit: float | None = None  # API requests per second (sliding 1 s window); beyond it: 429
    retry_after: bool = True  # send Retry-After with the 429 (Platform often does not)
    error_rate: float = 0.0  # random 500/502/503 before processing
    throttle_rate: float = 0.0  # random 429s whatever the pace (a gateway shared with other clients), no Retry-After
    reset_rate: float = 0.0  # connection closed before processing (nothing stored)
    drop_rate: float = 0.0  # commit-then-drop: a create or edit is stored, then the connection is closed
    slow_rate: float = 0.0  # answer only after slow_seconds (beyond a client timeout)
    slow_seconds: float = 30.0
    scope: str = "all"  # "all" API requests, only "create" requests, or only "list" (list, search, lookup)
    seed: int | None = None  # makes the random faults reproducible
    index_lag: float = 0.0  # list and search show a new offer only this many seconds after it is stored

    def __post_init__(self) -> None:
        for name in ("error_rate", "throttle_rate", "reset_rate", "drop_rate", "slow_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive")
        if self.scope not in ("all", "create", "list"):
            raise ValueError("scope must be 'all', 'create' or 'list'")
        if self.latency_ms < 0 or self.jitter_ms < 0 or self.slow_seconds < 0 or self.index_lag < 0:
            raise ValueError("latency, jitter, slow_seconds and index_lag cannot be negative")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class EmulatorConfig:
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    org_id: str = DEFAULT_ORG_ID
    token_ttl: int = 86399  # seconds, as IMS answers
    max_offers: int = 10_000  # guardrail per sandbox
    max_content_bytes: int = 1024  # guardrail: representation content of one offer
    page_limit: int = 20  # default page size of list/search
    max_page_limit: int = 1000
    db: str | None = None  # sqlite file; None keeps everything in memory
    faults: Faults = field(default_factory=Faults)
    placements: tuple[dict[str, str], ...] = DEFAULT_PLACEMENTS  # every sandbox starts with these
    max_placements: int = 1_000  # guardrail per sandbox

    def with_faults(self, **changes: Any) -> EmulatorConfig:
        return replace(self, faults=replace(self.faults, **changes))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> EmulatorConfig:
        """The config `bulkoffers emulator` builds from its command-line options (their names are the
        fields', except `no_retry_after` and `fault_scope`). Raises ValueError naming a bad value."""
        fault_names = {f.name for f in fields(Faults)}
        faults = {k: v for k, v in options.items() if k in fault_names and v is not None}
        if options.get("no_retry_after"):
            faults["retry_after"] = False
        if options.get("fault_scope"):
            faults["scope"] = options["fault_scope"]
        own = {f.name for f in fields(cls)} - {"faults", "placements"}
        settings = {k: v for k, v in options.items() if k in own and v is not None}
        if options.get("placements"):
            settings["placements"] = load_placements(options["placements"])
        return cls(**settings, faults=Faults(**faults))


def load_placements(path: str) -> tuple[dict[str, str], ...]:
    """`--placements FILE`: a JSON list of placements, each with name, channel (a channel URI or a
    short name such as web) and componentType (imagelink, html, text, json), and optionally id, @id and
    description. Raises ValueError naming the entry and field that is wrong."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read --placements {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ValueError(f"--placements {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise ValueError(f"--placements {path} must hold a JSON list of placements")
    out = []
    for i, item in enumerate(data):
        where = f"--placements {path}, entry {i}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise ValueError(f"{where}: needs a name")
        kind = item.get("componentType", item.get("component_type"))
        if kind not in COMPONENT_TYPES:
            raise ValueError(f"{where}: componentType must be one of {', '.join(COMPONENT_TYPES)}")
        channel = item.get("channel")
        if not isinstance(channel, str) or not channel:
            raise ValueError(f"{where}: needs a channel")
        if "://" not in channel:
            channel = f"https://ns.adobe.com/xdm/channel-types/{channel}"
        out.append({"name": item["name"], "channel": channel, "component_type": kind,
                    "description": str(item.get("description", "")), "id": str(item.get("id", "")),
                    "at_id": str(item.get("@id", item.get("at_id", "")))})
    return tuple(out)

