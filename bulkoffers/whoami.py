"""`bulkoffers check-auth`: get a token and list one page of fallback offers, before a large run."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from .answers import Verdict, auth_hint, classify, excerpt
from .client import open_library
from .config import ApiConfig
from .errors import FatalApiError


@dataclass
class AuthCheck:
    token_source: str = ""
    container_id: str | None = None
    total: int | None = None
    names: list[str] = field(default_factory=list)


def check_auth(api: ApiConfig) -> AuthCheck:
    return anyio.run(_check, api)


async def _check(api: ApiConfig) -> AuthCheck:
    result = AuthCheck()
    async with open_library(api, connections=2) as lib:
        creds = api.credentials
        result.token_source = "the given access token" if creds.access_token else f"IMS at {api.target.ims_url}"
        result.container_id = lib.container_id if api.target.api == "xcore" else None
        answer = await lib.list_page(limit=5)
        if answer.status != 200:
            verdict = classify(answer)
            hint = auth_hint(answer) if verdict in (Verdict.FATAL, Verdict.REFRESH) else None
            raise FatalApiError(f"listing fallback offers failed: {excerpt(answer)}", status=answer.status, hint=hint)
        found = lib.parse_list(answer.body)
        total = lib.total(answer.body)
        result.total = total if total is not None else len(found)
        result.names = [f.name for f in found]
    return result
