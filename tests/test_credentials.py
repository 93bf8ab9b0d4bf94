"""Credentials: every source and their precedence, token refresh, the stop on 401/403, and that no
secret reaches any output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulkoffers.config import DEFAULT_SCOPES
from bulkoffers.credentials import resolve
from bulkoffers.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID, EmulatorConfig, EmulatorServer
from bulkoffers.errors import ConfigError

from .conftest import FIXTURES, cli_env, run_cli
from .test_import import read_csv, write_offers

PROJECT_JSON = {"project": {"id": "p", "org": {"id": "1", "name": "Org", "ims_org_id": "JSON@AdobeOrg"},
                            "workspace": {"details": {"credentials": [{
                                "id": "c", "name": "cred", "integration_type": "oauth_server_to_server",
                                "oauth_server_to_server": {"client_id": "json-id", "client_secrets": ["json-secret"],
                                                           "scopes": ["openid", "AdobeID"]}}]}}}}


def test_precedence_flags_env_dotenv_config(tmp_path: Path) -> None:
    """Each value comes from the first source that has it (flag, environment, .env, config file), the origin
    is recorded, and describe() never shows a secret."""
    (tmp_path / ".env").write_text("BULKOFFERS_CLIENT_ID=dotenv-id\nBULKOFFERS_ORG_ID='DOTENV@AdobeOrg'\n"
                                   "export BULKOFFERS_SANDBOX=dotenv-sb\n")
    (tmp_path / "bulkoffers.toml").write_text('[credentials]\nclient_id = "toml-id"\norg_id = "TOML@AdobeOrg"\n'
                                             'sandbox = "toml-sb"\nclient_secret = "toml-secret"\n'
                                             'scopes = ["a", "b"]\n')
    env = {"BULKOFFERS_CLIENT_ID": "env-id", "BULKOFFERS_ORG_ID": "ENV@AdobeOrg"}
    got = resolve({"client_id": "flag-id"}, env, tmp_path)
    c = got.credentials
    assert (c.client_id, c.org_id, c.sandbox, c.client_secret, c.scopes) == (
        "flag-id", "ENV@AdobeOrg", "dotenv-sb", "toml-secret", ("a", "b"))
    assert got.origins["client_id"] == "flag" and got.origins["org_id"] == "env"
    assert got.origins["sandbox"].startswith(".env") and got.origins["client_secret"].startswith("config")
    shown = "\n".join(got.describe())
    assert "toml-secret" not in shown and "client_secret: set (from config" in shown


def test_defaults_and_adobe_json_files(tmp_path: Path) -> None:
    """Sandbox and scopes have defaults; both shapes of Adobe's Developer Console credential JSON are read."""
    got = resolve({}, {}, tmp_path)
    assert got.credentials.sandbox == "prod" and got.credentials.scopes == DEFAULT_SCOPES
    nested = tmp_path / "project.json"
    nested.write_text(json.dumps(PROJECT_JSON))
    c = resolve({}, {"BULKOFFERS_CONFIG": str(nested)}, tmp_path).credentials
    assert (c.client_id, c.client_secret, c.org_id, c.scopes) == ("json-id", "json-secret", "JSON@AdobeOrg",
                                                                 ("openid", "AdobeID"))
    flat = tmp_path / "cred.json"
    flat.write_text(json.dumps({"CLIENT_ID": "f-id", "CLIENT_SECRETS": ["f-secret"], "ORG_ID": "F@AdobeOrg",
                                "SCOPES": ["openid"]}))
    c = resolve({}, {}, tmp_path, flat).credentials
    assert (c.client_id, c.client_secret, c.org_id) == ("f-id", "f-secret", "F@AdobeOrg")


@pytest.mark.parametrize("content,needle", [
    ("not = [toml", "not valid TOML"),
    ('[credentials]\ncolour = "red"\n', r"unknown setting\(s\) colour"),
])
def test_bad_config_files(tmp_path: Path, content: str, needle: str) -> None:
    """A broken config file is a ConfigError that says what is wrong with it."""
    (tmp_path / "bulkoffers.toml").write_text(content)
    with pytest.raises(ConfigError, match=needle):
        resolve({}, {}, tmp_path)


def check_auth(emu: EmulatorServer, cwd: Path, *args: str, **env: str) -> tuple[int, str]:
    out = run_cli("check-auth", "--base-url", emu.url, "--ims-url", emu.url, *args, env=cli_env(**env), cwd=cwd)
    return out.returncode, out.stdout + out.stderr


@pytest.mark.parametrize("source", ["flags", "env", "dotenv", "toml", "json"])
def test_each_source_works_end_to_end(emulator: EmulatorServer, tmp_path: Path, source: str) -> None:
    """check-auth succeeds against the emulator with credentials from each source alone."""
    args: list[str] = []
    env: dict[str, str] = {}
    if source == "flags":
        args = ["--client-id", DEFAULT_CLIENT_ID, "--client-secret", DEFAULT_CLIENT_SECRET, "--org-id", DEFAULT_ORG_ID]
    elif source == "env":
        env = {"BULKOFFERS_CLIENT_ID": DEFAULT_CLIENT_ID, "BULKOFFERS_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
               "BULKOFFERS_ORG_ID": DEFAULT_ORG_ID}
    elif source == "dotenv":
        (tmp_path / ".env").write_text(f"BULKOFFERS_CLIENT_ID={DEFAULT_CLIENT_ID}\n"
                                       f"BULKOFFERS_CLIENT_SECRET={DEFAULT_CLIENT_SECRET}\n"
                                       f"BULKOFFERS_ORG_ID={DEFAULT_ORG_ID}\n")
    elif source == "toml":
        (tmp_path / "bulkoffers.toml").write_text(
            f'[credentials]\nclient_id = "{DEFAULT_CLIENT_ID}"\nclient_secret = "{DEFAULT_CLIENT_SECRET}"\n'
            f'org_id = "{DEFAULT_ORG_ID}"\n')
    else:
        doc = json.loads(json.dumps(PROJECT_JSON))
        doc["project"]["org"]["ims_org_id"] = DEFAULT_ORG_ID
        s2s = doc["project"]["workspace"]["details"]["credentials"][0]["oauth_server_to_server"]
        s2s.update(client_id=DEFAULT_CLIENT_ID, client_secrets=[DEFAULT_CLIENT_SECRET])
        (tmp_path / "creds.json").write_text(json.dumps(doc))
        args = ["--config", str(tmp_path / "creds.json")]
    code, text = check_auth(emulator, tmp_path, *args, **env)
    assert code == 0, text
    assert "token: ok" in text and "sandbox 'prod'" in text and DEFAULT_CLIENT_SECRET not in text


def test_flag_beats_a_wrong_environment(emulator: EmulatorServer, tmp_path: Path) -> None:
    """A wrong secret in the environment is refused by IMS (and not printed); the right one as a flag wins
    over it."""
    env = {"BULKOFFERS_CLIENT_ID": DEFAULT_CLIENT_ID, "BULKOFFERS_CLIENT_SECRET": "wrong-secret",
           "BULKOFFERS_ORG_ID": DEFAULT_ORG_ID}
    code, text = check_auth(emulator, tmp_path, **env)
    assert code == 2 and "IMS refused the client credentials (HTTP 401" in text and "wrong-secret" not in text
    code, text = check_auth(emulator, tmp_path, "--client-secret", DEFAULT_CLIENT_SECRET, **env)
    assert code == 0, text


def test_check_auth_names_the_header_to_fix(emulator: EmulatorServer, tmp_path: Path) -> None:
    """A wrong org id names the x-gw-ims-org-id header and --org-id; a refused access token says so without
    printing it."""
    code, text = check_auth(emulator, tmp_path, "--client-id", DEFAULT_CLIENT_ID, "--client-secret",
                            DEFAULT_CLIENT_SECRET, "--org-id", "OTHER@AdobeOrg")
    assert code == 2 and "x-gw-ims-org-id: --org-id must be the organization" in text
    code, text = check_auth(emulator, tmp_path, "--access-token", "stale-token-value", "--client-id",
                            DEFAULT_CLIENT_ID, "--org-id", DEFAULT_ORG_ID)
    assert code == 2 and "access token is refused" in text and "stale-token-value" not in text


def test_plain_http_to_another_host_is_refused(tmp_path: Path) -> None:
    """Plain http is refused for any host but this machine (tokens never travel unencrypted)."""
    out = run_cli("check-auth", "--base-url", "http://platform.example.com", "--client-id", "x",
                  "--client-secret", "a-long-enough-secret", "--org-id", "z", cwd=tmp_path)
    assert out.returncode == 2 and "plain http to another host" in out.stderr


def test_token_expiring_mid_run_is_refreshed(tmp_path: Path) -> None:
    """With one-second tokens, a run fetches new ones as they expire and creates every offer."""
    with EmulatorServer(EmulatorConfig(token_ttl=1)) as emu:
        source = write_offers(tmp_path / "o.csv", 30)
        out = run_cli("import", str(source), "--results", str(tmp_path / "r.csv"), "--base-url", emu.url,
                      "--ims-url", emu.url, "--rate", "15", env=cli_env(
                          BULKOFFERS_CLIENT_ID=DEFAULT_CLIENT_ID, BULKOFFERS_CLIENT_SECRET=DEFAULT_CLIENT_SECRET,
                          BULKOFFERS_ORG_ID=DEFAULT_ORG_ID))
        assert out.returncode == 0, out.stderr
        stats = emu.stats()
        assert stats["requests"]["token"] >= 2 and stats["sandboxes"]["prod"]["offers"] == 30


def test_a_refused_static_token_stops_the_run_at_once(emulator: EmulatorServer, tmp_path: Path) -> None:
    """A refused static token (it cannot be refreshed) stops the run with exit 2 and the fix: at the
    listing of the sandbox, before any row is touched; and with --on-existing create --no-preflight (nothing read) at
    the first create, the other rows recorded as not attempted."""
    source = write_offers(tmp_path / "o.csv", 20)
    args = ["--base-url", emulator.url, "--ims-url", emulator.url, "--access-token", "expired-token-123",
            "--client-id", DEFAULT_CLIENT_ID, "--org-id", DEFAULT_ORG_ID, "--concurrency", "1"]
    listed = run_cli("import", str(source), "--results", str(tmp_path / "l.csv"), *args)
    assert listed.returncode == 2 and "access token is refused" in listed.stderr
    assert "create" not in emulator.stats()["requests"] and not (tmp_path / "l.csv").exists()
    out = run_cli("import", str(source), "--results", str(tmp_path / "r.csv"), *args, "--on-existing", "create", "--no-preflight")
    assert out.returncode == 2 and "access token is refused" in out.stderr
    assert emulator.stats()["requests"]["create"] == 1
    rows = read_csv(tmp_path / "r.csv")
    assert sum(r["error"].startswith("not attempted") for r in rows) == 19


def test_no_secret_reaches_any_output(tmp_path: Path) -> None:
    """A run of every command with --verbose: the secret and every token the emulator issued appear in no
    output, file, journal or log."""
    secret = "Sup3r-Secret-Value-42"
    with EmulatorServer(EmulatorConfig(client_secret=secret)) as emu:
        env = cli_env(BULKOFFERS_CLIENT_ID=DEFAULT_CLIENT_ID, BULKOFFERS_CLIENT_SECRET=secret,
                      BULKOFFERS_ORG_ID=DEFAULT_ORG_ID)
        common = ["--base-url", emu.url, "--ims-url", emu.url]
        outs = [
            run_cli("import", str(FIXTURES / "invalid.csv"), "--results", str(tmp_path / "r.csv"), "--failures",
                    str(tmp_path / "f.csv"), "--payloads-out", str(tmp_path / "p.jsonl"), "--verbose", *common,
                    env=env),
            run_cli("retry", str(tmp_path / "r.csv"), "--verbose", *common, env=env),
            run_cli("check-auth", "--verbose", *common, env=env, cwd=tmp_path),
            run_cli("import", str(FIXTURES / "invalid.csv"), "--dry-run", "--payloads-out", str(tmp_path / "d.jsonl"),
                    "--verbose", *common, env=env),
            run_cli("rollback", str(tmp_path / "r.csv"), "--yes", "--verbose", *common, env=env),
        ]
        tokens = list(emu.state.tokens)
    assert outs[0].returncode == 1 and "GET " not in outs[0].stdout and " -> 201 in " in outs[0].stderr
    texts = [o.stdout + o.stderr for o in outs] + [p.read_text() for p in tmp_path.iterdir() if p.is_file()]
    assert len(texts) >= 10 and tokens
    for value in [secret, *tokens]:
        assert not any(value in t for t in texts), value


def test_redaction_masks_whole_values_and_never_spells_a_secret() -> None:
    """A secret is masked with the value around it (a token with a prefix, a query value), and a
    'secret' too short to hide safely is never used for masking: masking its letters in ordinary words
    would spell it out."""
    from bulkoffers.redact import Redactor

    redact = Redactor(["s3cr3t-Value-99", "e"])
    text = redact("refused: Bearer xs3cr3t-Value-99y, url?client_secret=s3cr3t-Value-99&x=1 \"s3cr3t-Value-99\"")
    assert text == "refused: Bearer ***, url?client_secret=***&x=1 \"***\""
