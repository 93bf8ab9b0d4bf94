"""IMS (the token endpoint) and the gateway's checks on every API call: token, x-api-key, org, sandbox."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .state import STATE, error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def ims_token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    cfg = state.config
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return web.json_response({"error": "unsupported_grant_type",
                                  "error_description": "grant_type must be client_credentials"}, status=400)
    if form.get("client_id") != cfg.client_id:
        return web.json_response({"error": "invalid_client", "error_description": "invalid client_id parameter"},
                                 status=400)
    if form.get("client_secret") != cfg.client_secret:
        return web.json_response({"error": "invalid_client", "error_description": "invalid client_secret parameter"},
                                 status=401)
    token = "emu-" + secrets.token_urlsafe(24)
    state.tokens[token] = (cfg.client_id, time.monotonic() + cfg.token_ttl)
    state.requests["token"] += 1
    return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": cfg.token_ttl})


def _check_auth(request: web.Request) -> tuple[str, str] | web.Response:
    """(client_id, sandbox) of an authorised request, or the error the gateway would answer."""
    state = request.app[STATE]
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return error(401, "Unauthorized", "Oauth token is not valid", error_code="401013")
    entry = state.tokens.get(auth[7:].strip())
    if entry is None:
        return error(401, "Unauthorized", "Oauth token is not valid", error_code="401013")
    client_id, expires = entry
    if time.monotonic() >= expires:
        return error(401, "Unauthorized", "Oauth token has expired", error_code="401013")
    api_key = request.headers.get("x-api-key")
    if not api_key:
        return error(403, "Forbidden", "Api Key is required", error_code="403000")
    if api_key != client_id:
        return error(403, "Forbidden", "Api Key is invalid", error_code="403003")
    org = request.headers.get("x-gw-ims-org-id")
    if not org:
        return error(400, "Bad Request", "x-gw-ims-org-id header is required", error_code="400001")
    if org != state.config.org_id:
        return error(403, "Forbidden", f"Client is not allowed for IMS org {org}", error_code="403027")
    sandbox = request.headers.get("x-sandbox-name")
    if not sandbox:
        return error(400, "Bad Request", "x-sandbox-name header is required", error_code="400002")
    return client_id, sandbox


def authorised(fn: Callable[[web.Request, str, str], Awaitable[web.StreamResponse]]) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        checked = _check_auth(request)
        if isinstance(checked, web.Response):
            return checked
        return await fn(request, *checked)

    return wrapper
