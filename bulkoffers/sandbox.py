"""What the sandbox already holds, read once before sending, and what that means for each offer.

`read_offers` lists every fallback offer (every page, through the attempt loop); `decide` is the pure
rule of `--on-existing` for one offer whose name may be taken:

    create     send it anyway (a second offer with that name)
    skip       leave the existing offer alone; the row says whether its content differs  [default]
    update     make the existing offer hold the row's content (a JSON Patch of what differs);
               equal content is `unchanged`; two offers with the name: the row fails, nothing is touched
    fail       the row fails, saying that the offer exists
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .config import Api, ApiConfig, OnExisting
from .payloads import changed_fields, patch_ops

if TYPE_CHECKING:
    from .client import Found
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


def snapshot(api: ApiConfig) -> Snapshot:
    """Reads the sandbox once (a dry run's view of it): every fallback offer, every page."""
    from .client import open_library
    from .ratelimit import RateLimiter
    from .sender import Sender

    async def read() -> Snapshot:
        async with open_library(api) as lib:
            return Snapshot(await read_offers(Sender(lib, RateLimiter(api.rate), api.retry)))

    return anyio.run(read)


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
