"""Where credentials come from, in this order: command-line flags, environment variables
(BULKOFFERS_*), a .env file, then a config file (bulkoffers.toml, or the JSON credential file Adobe's
Developer Console downloads). Each value is taken from the first source that has it; `origins` says
which, so `check-auth` can show it without showing the secret."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DEFAULT_SCOPES, Credentials
from .errors import ConfigError
from .redact import MIN_SECRET

FIELDS = ("client_id", "client_secret", "org_id", "sandbox", "scopes", "access_token")
ENV = {f: f"BULKOFFERS_{f.upper()}" for f in FIELDS}
SECRET_FIELDS = ("client_secret", "access_token")
DEFAULT_CONFIG = "bulkoffers.toml"


@dataclass(frozen=True)
class Resolved:
    credentials: Credentials
    origins: dict[str, str]  # field → "flag", "env", ".env (path)", "config (path)", "default"

    def describe(self) -> list[str]:
        out = []
        for f in FIELDS:
            origin = self.origins.get(f)
            if origin is None:
                continue
            value = getattr(self.credentials, f)
            shown = "set" if f in SECRET_FIELDS else (",".join(value) if isinstance(value, tuple) else value)
            out.append(f"{f}: {shown} (from {origin})")
        return out


def _from_dotenv(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values  # python-dotenv: the .env dialect (quotes, export, comments)

    values = dotenv_values(path)
    return {f: str(values[name]) for f, name in ENV.items() if values.get(name)}


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    section = data.get("credentials", data)
    unknown = set(section) - set(FIELDS) - {"credentials"}
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}",
                          hint=f"[credentials] takes {', '.join(FIELDS)}")
    return {f: section[f] for f in FIELDS if section.get(f)}


def _from_adobe_json(path: Path) -> dict[str, Any]:
    """Developer Console downloads: the project/workspace JSON (nested), or a flat credential JSON."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"credential file {path} is not valid JSON: {exc}") from exc
    out: dict[str, Any] = {}
    project = data.get("project") if isinstance(data, dict) else None
    if isinstance(project, dict):
        out["org_id"] = project.get("org", {}).get("ims_org_id")
        creds = project.get("workspace", {}).get("details", {}).get("credentials", [])
        s2s = next((c.get("oauth_server_to_server") for c in creds
                    if isinstance(c, dict) and c.get("integration_type") == "oauth_server_to_server"), None)
        if not s2s:
            raise ConfigError(f"credential file {path} has no OAuth server-to-server credential",
                              hint="add one to the workspace in Developer Console and download the JSON again "
                                   "(JWT credentials are deprecated)")
        out.update(client_id=s2s.get("client_id"), client_secret=(s2s.get("client_secrets") or [None])[0],
                   scopes=s2s.get("scopes"))
    elif isinstance(data, dict):
        upper = {k.upper(): v for k, v in data.items()}
        secrets = upper.get("CLIENT_SECRETS") or [upper.get("CLIENT_SECRET")]
        out.update(client_id=upper.get("CLIENT_ID") or upper.get("API_KEY"), client_secret=secrets[0],
                   org_id=upper.get("ORG_ID") or upper.get("IMS_ORG_ID"), scopes=upper.get("SCOPES"))
    else:
        raise ConfigError(f"credential file {path} is not a Developer Console credential JSON")
    return {k: v for k, v in out.items() if v}


def load_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file {path} not found", hint="check --config / BULKOFFERS_CONFIG")
    return _from_adobe_json(path) if path.suffix.lower() == ".json" else _from_toml(path)


def _scopes(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(s).strip() for s in value if str(s).strip())
    return tuple(s.strip() for s in str(value).split(",") if s.strip())


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str], cwd: Path,
            config: Path | None = None) -> Resolved:
    """Credentials from flags > environment > .env in cwd > config file (--config, BULKOFFERS_CONFIG,
    or bulkoffers.toml in cwd)."""
    sources: list[tuple[str, dict[str, Any]]] = [
        ("flag", {f: flags[f] for f in FIELDS if flags.get(f)}),
        ("env", {f: environ[name] for f, name in ENV.items() if environ.get(name)}),
    ]
    dotenv = cwd / ".env"
    if dotenv.is_file():
        sources.append((f".env ({dotenv})", _from_dotenv(dotenv)))
    config_path = config or (Path(environ["BULKOFFERS_CONFIG"]) if environ.get("BULKOFFERS_CONFIG") else None)
    if config_path is None and (cwd / DEFAULT_CONFIG).is_file():
        config_path = cwd / DEFAULT_CONFIG
    if config_path is not None:
        sources.append((f"config ({config_path})", load_config_file(config_path)))
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for origin, found in sources:
        for f, v in found.items():
            if f not in values:
                values[f], origins[f] = v, origin
    if "sandbox" not in values:
        values["sandbox"], origins["sandbox"] = "prod", "default"
    if "scopes" not in values:
        values["scopes"], origins["scopes"] = DEFAULT_SCOPES, "default"
    creds = Credentials(client_id=values.get("client_id"), client_secret=values.get("client_secret"),
                        org_id=values.get("org_id"), sandbox=str(values["sandbox"]),
                        scopes=_scopes(values["scopes"]), access_token=values.get("access_token"))
    return Resolved(creds, origins)


def resolve_flags(flags: Mapping[str, Any], config: Path | None = None) -> Resolved:
    """Every source as a command sees them: its flags, the process environment, ./.env and the config
    file (`--config`, BULKOFFERS_CONFIG or ./bulkoffers.toml)."""
    return resolve({f: flags.get(f) for f in FIELDS}, os.environ, Path.cwd(), config)


def checked(resolved: Resolved, sandbox: str | None = None, org_id: str | None = None) -> Credentials:
    """The credentials to use, checked for completeness. A continued run (resume, retry, rollback)
    passes its journal's sandbox, and its org when none is configured."""
    creds = resolved.credentials
    for name in SECRET_FIELDS:
        value = getattr(creds, name)
        if value and len(value) < MIN_SECRET:
            origin = resolved.origins.get(name, "")
            where = {"flag": f"--{name.replace('_', '-')}", "env": ENV[name]}.get(origin, origin)
            raise ConfigError(f"the {name.replace('_', ' ')} from {where} is {len(value)} character{'s' if len(value) != 1 else ''} long: not a real "
                              f"one (Adobe's are far longer), and too short to be kept out of logs",
                              hint=f"set the {name.replace('_', ' ')} from the Developer Console credential")
    if sandbox is not None:
        creds = dataclasses.replace(creds, sandbox=sandbox)
    if org_id is not None and not creds.org_id:
        creds = dataclasses.replace(creds, org_id=org_id)
    creds.check()
    return creds
