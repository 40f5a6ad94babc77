"""`corral user|team|grant|token|whoami` in real processes: on a local home, and against a
server whose anonymous callers have no role, with the token in CORRAL_TOKEN."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.config import Settings
from corral.wiring import open_corral
from tests.cli.conftest import Cli as _Cli
from tests.fixtures.corral import ServerThread

SECRET = re.compile(r"^crl_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}$")


class Cli(_Cli):
    """The conftest's ``Cli``, able to feed standard input (``--password-stdin``)."""

    def run(
        self, *args: str, ok: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "corral", *self.args, *args],
            capture_output=True,
            text=True,
            env=self.env,
            input=input,
            timeout=120,
            check=False,
        )
        if ok:
            assert done.returncode == 0, f"{args}: {done.stderr}"
        return done


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CORRAL_HOME": str(tmp_path / "home"), **extra}
    for name in ("CORRAL_SERVER_URL", "CORRAL_TOKEN"):
        if name not in extra:
            env.pop(name, None)
    return env


@pytest.fixture
def local(tmp_path: Path) -> Cli:
    return Cli([], _env(tmp_path))


def test_users_teams_and_grants_on_a_local_home(local: Cli) -> None:
    made = local.run("user", "create", "ana", "--password-stdin", "--email", "ana@example.com",
                     input="correct-horse\n")  # fmt: skip
    assert "created user 'ana'" in made.stdout
    short = local.run("user", "create", "bob", "--password-stdin", input="short\n", ok=False)
    assert short.returncode == 1
    assert short.stderr.startswith("error: ")
    assert "8" in short.stderr
    again = local.run("user", "create", "ana", ok=False)
    assert (again.returncode, "ana" in again.stderr) == (1, True)

    [ana] = local.json("user", "list")
    assert (ana["name"], ana["email"], ana["has_password"]) == ("ana", "ana@example.com", True)
    local.run("user", "disable", "ana")
    assert local.json("user", "list")[0]["disabled"] is True
    local.run("user", "enable", "ana")
    assert local.json("user", "list")[0]["disabled"] is False
    local.run("user", "passwd", "ana", "--password-stdin", input="another-horse\n")
    table = local.run("user", "list").stdout
    assert "ana@example.com" in table

    local.run("team", "create", "ml")
    local.run("team", "add", "ml", "ana")
    assert local.json("team", "list") == [
        {
            "name": "ml",
            "members": ["ana"],
            "created_at": local.json("team", "list")[0]["created_at"],
        }
    ]
    assert "ana" in local.run("team", "list").stdout

    granted = local.run("grant", "maintainer", "--team", "ml", "--model", "churn").stdout
    assert "granted maintainer on model 'churn' to team 'ml'" in granted
    local.run("grant", "viewer", "--user", "ana")
    both = local.run("grant", "viewer", "--user", "ana", "--team", "ml", ok=False)
    assert "exactly one of --user and --team" in both.stderr
    [on_churn] = local.json("grant", "list", "--model", "churn")
    assert (on_churn["role"], on_churn["subject"], on_churn["model"]) == (
        "maintainer",
        "ml",
        "churn",
    )
    assert len(local.json("grant", "list")) == 2
    local.run("grant", "revoke", str(on_churn["id"]))
    assert local.json("grant", "list", "--model", "churn") == []
    unknown = local.run("grant", "revoke", "99999", ok=False)
    assert (unknown.returncode, unknown.stderr.startswith("error: ")) == (1, True)

    local.run("team", "remove", "ml", "ana")
    assert local.json("team", "list")[0]["members"] == []
    local.run("team", "delete", "ml")
    assert local.json("team", "list") == []
    local.run("user", "delete", "ana", "--yes")
    assert local.json("user", "list") == []
    me = local.json("whoami")
    assert (me["name"], me["global_role"]) == ("system", "admin")


def test_token_create_prints_the_secret_once_and_list_never(local: Cli) -> None:
    local.run("user", "create", "ana")
    made = local.run("token", "create", "--user", "ana", "--name", "laptop", "--expires", "30d",
                     "--model", "churn", "--model", "fraud", "--read-only", "--tier", "silver",
                     "--rate-limit", "50/second", "--rows-per-day", "1000")  # fmt: skip
    secret = made.stdout.strip()
    assert SECRET.match(secret), made.stdout
    assert "shown only once" in made.stderr
    assert secret not in made.stderr

    as_json = local.json("token", "create", "--user", "ana", "--name", "ci")
    assert SECRET.match(as_json["secret"])
    assert as_json["expires_at"] is None

    listed = local.run("token", "list", "--user", "ana", "--json").stdout
    assert secret not in listed
    assert as_json["secret"] not in listed
    tokens = {t["name"]: t for t in local.json("token", "list", "--user", "ana")}
    laptop = tokens["laptop"]
    assert (laptop["models"], laptop["read_only"], laptop["tier"]) == (
        ["churn", "fraud"],
        True,
        "silver",
    )
    assert (laptop["rate_limit"], laptop["rows_per_day"]) == ("50/second", 1000)
    assert secret.startswith(f"crl_{laptop['id']}_")
    table = local.run("token", "list", "--user", "ana").stdout
    assert "laptop" in table
    assert "active" in table
    assert secret not in table

    local.run("token", "revoke", laptop["id"])
    revoked = {t["name"]: t for t in local.json("token", "list", "--user", "ana")}["laptop"]
    assert revoked["revoked_at"] is not None
    assert "revoked" in local.run("token", "list", "--user", "ana").stdout
    bad = local.run(
        "token", "create", "--user", "ana", "--name", "x", "--expires", "soon", ok=False
    )
    assert bad.returncode == 1
    assert "--expires" in bad.stderr


@pytest.fixture
def closed_server(tmp_path: Path) -> Iterator[tuple[ServerThread, str]]:
    """A server on its own home whose anonymous callers have no role; the first admin token."""
    settings = Settings(home=tmp_path / "server-home", anonymous_role="none")
    wired = open_corral(settings)
    try:
        admin = wired.identity.bootstrap_admin()
    finally:
        wired.close()
    assert admin is not None
    with ServerThread(settings, token=admin) as server:
        yield server, admin


def test_the_cli_manages_identities_on_a_server_with_the_token_in_the_environment(
    tmp_path: Path, closed_server: tuple[ServerThread, str]
) -> None:
    server, admin = closed_server
    anonymous = Cli(["--server", server.url], _env(tmp_path))
    refused = anonymous.run("whoami", ok=False)
    assert refused.returncode == 1
    assert "token" in refused.stderr

    as_admin = Cli(["--server", server.url], _env(tmp_path, CORRAL_TOKEN=admin))
    me = as_admin.json("whoami")
    assert (me["name"], me["global_role"]) == ("admin", "admin")
    assert "admin" in as_admin.run("whoami").stdout

    as_admin.run("user", "create", "ana")
    as_admin.run("grant", "viewer", "--user", "ana")
    secret = as_admin.run(
        "token", "create", "--user", "ana", "--name", "ci", "--read-only"
    ).stdout.strip()
    assert SECRET.match(secret)

    as_ana = Cli(["--server", server.url], _env(tmp_path, CORRAL_TOKEN=secret))
    ana = as_ana.json("whoami")
    assert (ana["name"], ana["global_role"], ana["read_only"]) == ("ana", "viewer", True)
    denied = as_ana.run("user", "create", "eve", ok=False)
    assert denied.returncode == 1
    assert denied.stderr.startswith("error: ")

    [token] = as_admin.json("token", "list", "--user", "ana")
    as_admin.run("token", "revoke", token["id"])
    gone = as_ana.run("whoami", ok=False)
    assert gone.returncode == 1
    assert "revoked" in gone.stderr
