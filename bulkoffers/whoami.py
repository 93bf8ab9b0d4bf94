"""`bulkoffers check-auth`: get a token and list one page of fallback offers, before a large run."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from .client import OfferLibrary
from .config import Credentials, Target
from .errors import FatalApiError
from .answers import Verdict, auth_hint, classify, excerpt


@dataclass
class AuthCheck:
    token_source: str = ""
    container_id: str | None = None
    total: int | None = None
    names: list[str] = field(default_factory=list)


def check_auth(target: Target, creds: Credentials, timeout: float = 30.0) -> AuthCheck:
    return anyio.run(_check, target, creds, timeout)


async def _check(target: Target, creds: Credentials, timeout: float) -> AuthCheck:
    result = AuthCheck()
    async with OfferLibrary(target, creds, timeout, 2) as lib:
        await lib.tokens.get()
        result.token_source = "the given access token" if creds.access_token else f"IMS at {target.ims_url}"
        if target.api == "xcore":
            result.container_id = await lib.resolve_container()
        pages = lib.list_all(page_size=5)
        answer, found = await pages.__anext__()
        await pages.aclose()
        if answer.status != 200:
            verdict = classify(answer)
            hint = auth_hint(answer) if verdict in (Verdict.FATAL, Verdict.REFRESH) else None
            raise FatalApiError(f"listing fallback offers failed: {excerpt(answer)}", status=answer.status, hint=hint)
        body = answer.body if isinstance(answer.body, dict) else {}
        result.total = int(body["total"]) if isinstance(body.get("total"), int) else len(found)
        result.names = [f.name for f in found]
    return result
