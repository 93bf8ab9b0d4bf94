"""What the sandbox already holds, read once before sending, and what that means for each offer.

`read_snapshot` lists every fallback offer and every placement (every page, through the attempt
loop). `preflight` checks an offer against the placements: each representation names a placement that
exists (a name is taken for its id when unambiguous), with that placement's channel and component
type, one placement per representation; `OfferBudget` keeps the sandbox under Adobe's 10,000-offer
guardrail together with the offers already there. `decide` is the pure rule of `--on-existing` for one
offer whose name may be taken:

    create     send it anyway (a second offer with that name)
    skip       leave the existing offer alone; the row says whether its content differs  [default]
    update     make the existing offer hold the row's content (a JSON Patch of what differs);
               equal content is `unchanged`; two offers with the name: the row fails, nothing is touched
    fail       the row fails, saying that the offer exists
"""

from __future__ import annotations

import dataclasses
import difflib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .columns import ColumnMap
from .config import Api, ApiConfig, OnExisting
from .errors import RowError
from .offers import MAX_OFFERS, Prepared, Representation
from .payloads import changed_fields, patch_ops
from .xdm import short_channel

if TYPE_CHECKING:
    from .client import Found, PlacementInfo
    from .sender import Sender

Action = Literal["create", "update", "updated", "unchanged", "skip", "fail"]


@dataclass(frozen=True)
class Decision:
    """What to do with one offer. `ops` is the patch for an update; `note` what its rows say."""

    action: Action
    existing: Found | None = None
    ops: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    @property
    def changes(self) -> str:
        return ", ".join(changed_fields(self.ops))


@dataclass
class Snapshot:
    """What the sandbox holds, as read before sending (None: not read)."""

    offers: dict[str, list[Found]] | None = None  # every fallback offer, by name
    placements: list[PlacementInfo] | None = None

    @property
    def offer_count(self) -> int:
        return sum(len(v) for v in (self.offers or {}).values())


def snapshot(api: ApiConfig, placements: bool = True) -> Snapshot:
    """Reads the sandbox once (a dry run's view of it): every fallback offer and placement."""
    from .client import open_library
    from .ratelimit import RateLimiter
    from .sender import Sender

    async def read() -> Snapshot:
        async with open_library(api) as lib:
            return await read_snapshot(Sender(lib, RateLimiter(api.rate), api.retry), True, placements)

    return anyio.run(read)


async def read_snapshot(sender: Sender, offers: bool, placements: bool) -> Snapshot:
    """The sandbox's offers and placements, each only when asked for. A listing that cannot be read
    stops with one line naming what to check (ConfigError)."""
    from .errors import ConfigError, LookupFailed

    where = "--container-id" if sender.api == "xcore" else "--base-url"
    found = Snapshot()
    if offers:
        try:
            found.offers = await read_offers(sender)
        except LookupFailed as exc:
            raise ConfigError(f"cannot list the sandbox's offers: {exc}",
                              hint=f"check {where} and --sandbox, or pass --on-existing create "
                                   "(with --no-preflight: nothing is read)") from exc
    if placements:
        try:
            found.placements = [p async for page in sender.pages(lambda: sender.lib.placements_page(),
                                                                 parse=sender.lib.parse_placements) for p in page]
        except LookupFailed as exc:
            raise ConfigError(f"cannot read the sandbox's placements: {exc}",
                              hint=f"check {where}, --sandbox and that the credential may read placements, or "
                                   "pass --no-preflight") from exc
    return found


class Catalog:
    """The sandbox's placements, by id and by name."""

    def __init__(self, placements: list[PlacementInfo], sandbox: str) -> None:
        self.sandbox = sandbox
        self.all = placements
        self.by_id = {p.id: p for p in placements}
        self.by_name: dict[str, list[PlacementInfo]] = defaultdict(list)
        for p in placements:
            self.by_name[p.name].append(p)

    def suggest(self, ref: str, channel: str, kind: str | None = None) -> str:
        """The placements for a channel (and component type), closest name first, as a fix."""
        fits = [p for p in self.all if p.channel == channel and (kind is None or p.component_type == kind)]
        if not fits:
            what = f" that take {kind}" if kind else ""
            return f"sandbox {self.sandbox!r} has no placement for {short_channel(channel)}{what}"
        def likeness(p: PlacementInfo) -> float:  # the row may hold a name or an id: closest of either first
            return max(difflib.SequenceMatcher(None, ref.lower(), x.lower()).ratio() for x in (p.name, p.id))

        chosen = sorted(fits, key=likeness, reverse=True)[:5]
        listed = ", ".join(f"{p.name} ({p.id})" for p in chosen) + (", ..." if len(fits) > 5 else "")
        what = f" taking {kind}" if kind else ""
        return f"placements for {short_channel(channel)}{what}: {listed}"


def preflight(prepared: Prepared, catalog: Catalog, cmap: ColumnMap) -> None:
    """Checks a valid offer's representations against the sandbox's placements and resolves placement
    names to ids. Problems go to `prepared.problems` (its offer is then None); otherwise its offer names
    placements by id."""
    offer = prepared.offer
    if offer is None:
        return
    reps: list[Representation] = []
    used: dict[str, int] = {}
    for rep in offer.representations:
        placement = catalog.by_id.get(rep.placement)
        named = catalog.by_name.get(rep.placement, [])
        if placement is None and len(named) > 1:  # a name several placements share: the one of this channel
            named = [p for p in named if p.channel == rep.channel] or named
        if placement is None and len(named) == 1:
            placement = named[0]  # a name where the id belongs, and only one placement (of the channel) has it
        if placement is None:
            why = (f"{len(named)} placements are named {rep.placement!r} ({', '.join(p.id for p in named)}): "
                   "give the id") if named else f"{rep.placement!r} is not a placement of sandbox {catalog.sandbox!r}"
            prepared.problems.append(RowError(rep.row, cmap.column("placement"),
                                              f"{why}; {catalog.suggest(rep.placement, rep.channel)}"))
            continue
        if placement.id in used:
            prepared.problems.append(RowError(rep.row, cmap.column("placement"), (
                f"placement {placement.name!r} is used by row {used[placement.id]} of this offer too, with another "
                "channel; each representation needs its own placement")))
            continue
        used[placement.id] = rep.row
        if placement.channel != rep.channel:
            prepared.problems.append(RowError(rep.row, cmap.column("channel"), (
                f"{short_channel(rep.channel)!r} is not the channel of placement {placement.name!r} "
                f"({short_channel(placement.channel)}); use {short_channel(placement.channel)}, or "
                f"{catalog.suggest(placement.name, rep.channel)}")))
            continue
        wrong = [c for c in rep.components if c.type != placement.component_type]
        for c in wrong:
            prepared.problems.append(RowError(c.row or rep.row, cmap.column("component_type"), (
                f"{c.type!r} does not fit placement {placement.name!r}, which takes {placement.component_type} "
                f"components; {catalog.suggest(placement.name, rep.channel, c.type)}")))
        if not wrong:  # (a copy only where a name became an id: dataclasses.replace costs per row)
            reps.append(rep if rep.placement == placement.id else dataclasses.replace(rep, placement=placement.id))
    if prepared.problems:
        prepared.offer = None
    elif any(a is not b for a, b in zip(reps, offer.representations)):
        prepared.offer = dataclasses.replace(offer, representations=tuple(reps))


class OfferBudget:
    """Adobe's guardrail on offers per sandbox, counted with the offers already there: each offer about to
    be created takes one; past the limit, `take` says why not."""

    def __init__(self, existing: int, limit: int = MAX_OFFERS) -> None:
        self.existing, self.limit, self.taken = existing, limit, 0

    def take(self) -> str | None:
        if self.existing + self.taken >= self.limit:
            return (f"sandbox holds {self.existing:,} offers; creating this one (the file's offer #{self.taken + 1:,} "
                    f"to create) would pass Adobe's guardrail of {self.limit:,} offers per sandbox: delete offers, "
                    "or import the rest into another sandbox")
        self.taken += 1
        return None


async def read_offers(sender: Sender) -> dict[str, list[Found]]:
    """Every fallback offer of the sandbox, by name (a name may be taken more than once)."""
    offers: dict[str, list[Found]] = defaultdict(list)
    async for page in sender.pages(lambda: sender.lib.list_page(limit=100)):
        for item in page:
            offers[item.name].append(item)
    return offers


def decide(body: dict[str, Any], name: str, existing: list[Found], mode: OnExisting, api: Api,
           updated_before: bool = False) -> Decision:
    """The rule of --on-existing for one offer. `existing`: the sandbox's offers with its name.
    `updated_before`: an earlier attempt of this run (a killed one) sent this update; if the offer now
    holds the row's content, that attempt took effect."""
    if not existing or mode == "create":
        return Decision("create")
    ids = ", ".join(f.id for f in existing[:5]) + (", ..." if len(existing) > 5 else "")
    if len(existing) > 1:
        if mode == "skip":
            return Decision("skip", existing[0], note=f"{len(existing)} offers named {name!r} exist already "
                                                       f"({ids}): not sent")
        return Decision("fail", note=f"ambiguous: {len(existing)} offers named {name!r} exist ({ids}); nothing "
                                     "was changed: delete or rename the extra ones, then run again")
    found = existing[0]
    ops = patch_ops(found.document, body, api)
    fields = ", ".join(changed_fields(ops))
    if mode == "skip":
        note = "exists already, same content: not sent" if not ops else \
            f"exists already with other content ({fields}): not updated (--on-existing update changes it)"
        return Decision("skip", found, ops, note)
    if mode == "fail":
        differs = f" with other content ({fields})" if ops else ""
        return Decision("fail", found, ops, f"an offer named {name!r} exists already{differs}, id {found.id}: "
                                            "--on-existing update changes it, skip leaves it")
    if not ops:
        return Decision("updated" if updated_before else "unchanged", found)
    return Decision("update", found, ops)
