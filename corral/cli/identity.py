"""Identity commands: ``user``, ``team``, ``grant``, ``token`` and ``whoami``."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import typer
from typer.core import TyperGroup

from corral.access import Role
from corral.cli import _output as o
from corral.errors import InvalidArgument

JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")
PASSWORD_STDIN = typer.Option(
    False, "--password-stdin", help="Read the password from standard input (one line)."
)


class _GrantGroup(TyperGroup):
    """``corral grant ROLE …`` is ``corral grant create ROLE …``; ``list`` and ``revoke`` stay."""

    # Typed loosely: typer vendors its own click, whose classes differ by version.
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["create", *args]
        return super().resolve_command(ctx, args)


user_app = typer.Typer(no_args_is_help=True, help="Users: create, list, disable, passwd…")
team_app = typer.Typer(no_args_is_help=True, help="Teams of users: create, add, remove, list.")
grant_app = typer.Typer(
    cls=_GrantGroup,
    no_args_is_help=True,
    help="Grant a role: corral grant ROLE (--user U | --team T) [--model M]; list; revoke.",
)
token_app = typer.Typer(no_args_is_help=True, help="API tokens: create, list, revoke.")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _password(from_stdin: bool, *, required: bool) -> str | None:
    """The password from standard input, else a hidden prompt (when one is required)."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidArgument("--password-stdin read an empty line: pipe the password in")
        return line
    if not required:
        return None
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _expiry(text: str | None) -> timedelta | None:
    if text is None or text.lower() == "never":
        return None
    from corral.monitoring.windows import parse_duration

    return timedelta(seconds=parse_duration(text, what="--expires"))


def _grant_json(grant: Any) -> dict[str, Any]:
    return {**o.jsonable(grant), "role": Role(grant.role).label}


def _token_state(token: Any) -> str:
    from datetime import UTC, datetime

    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= datetime.now(UTC):
        return "expired"
    return "active"


def _install_users(state: Any) -> None:
    @user_app.command("create")
    def user_create(
        name: str,
        password_stdin: bool = PASSWORD_STDIN,
        email: str = typer.Option("", "--email", help="Where to reach the user."),
        as_json: bool = JSON,
    ) -> None:
        """Create a user (with a password from stdin for the web login, or token-only)."""
        user = state.client().create_user(
            name, password=_password(password_stdin, required=False), email=email
        )
        if as_json:
            return o.emit_json(user)
        o.out.print(f"created user '{user.name}'")

    @user_app.command("list")
    def user_list(as_json: bool = JSON) -> None:
        """List users."""
        users = state.client().list_users()
        if as_json:
            return o.emit_json(users)
        o.table(
            f"{len(users)} user(s)",
            ["name", "email", "password", "disabled", "created"],
            [
                (u.name, u.email, "yes" if u.has_password else "", "yes" if u.disabled else "",
                 _when(u.created_at))
                for u in users
            ],
        )  # fmt: skip

    @user_app.command("disable")
    def user_disable(name: str) -> None:
        """Disable a user: its tokens and sessions stop working until it is enabled."""
        state.client().update_user(name, disabled=True)
        o.out.print(f"disabled user '{name}'")

    @user_app.command("enable")
    def user_enable(name: str) -> None:
        """Enable a disabled user again."""
        state.client().update_user(name, disabled=False)
        o.out.print(f"enabled user '{name}'")

    @user_app.command("delete")
    def user_delete(
        name: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")
    ) -> None:
        """Delete a user; its tokens and grants are revoked with it."""
        if not yes:
            typer.confirm(f"Delete user '{name}' and revoke its tokens and grants?", abort=True)
        state.client().delete_user(name)
        o.out.print(f"deleted user '{name}'")

    @user_app.command("passwd")
    def user_passwd(name: str, password_stdin: bool = PASSWORD_STDIN) -> None:
        """Set a user's password (at least 8 characters; asked for unless --password-stdin)."""
        state.client().update_user(name, password=_password(password_stdin, required=True))
        o.out.print(f"set the password of user '{name}'")


def _install_teams(state: Any) -> None:
    @team_app.command("create")
    def team_create(name: str) -> None:
        """Create a team."""
        state.client().create_team(name)
        o.out.print(f"created team '{name}'")

    @team_app.command("delete")
    def team_delete(name: str) -> None:
        """Delete a team (its grants go with it)."""
        state.client().delete_team(name)
        o.out.print(f"deleted team '{name}'")

    @team_app.command("add")
    def team_add(team: str, user: str) -> None:
        """Add a user to a team."""
        state.client().add_member(team, user)
        o.out.print(f"added '{user}' to team '{team}'")

    @team_app.command("remove")
    def team_remove(team: str, user: str) -> None:
        """Take a user out of a team."""
        state.client().remove_member(team, user)
        o.out.print(f"removed '{user}' from team '{team}'")

    @team_app.command("list")
    def team_list(as_json: bool = JSON) -> None:
        """List teams with their members."""
        teams = state.client().list_teams()
        if as_json:
            return o.emit_json(teams)
        o.table(
            f"{len(teams)} team(s)",
            ["name", "members", "created"],
            [(t.name, ", ".join(t.members), _when(t.created_at)) for t in teams],
        )


def _install_grants(state: Any) -> None:
    @grant_app.command("create")
    def grant_create(
        role: str = typer.Argument(..., help="viewer, consumer, contributor, maintainer or admin"),
        user: str | None = typer.Option(None, "--user", help="Grant it to this user…"),
        team: str | None = typer.Option(None, "--team", help="…or to this team."),
        model: str | None = typer.Option(None, "--model", help="On this model (default: all)."),
        as_json: bool = JSON,
    ) -> None:
        """Grant a role to a user or a team (also: corral grant ROLE …)."""
        if (user is None) == (team is None):
            raise InvalidArgument("give exactly one of --user and --team")
        made = state.client().grant(role, user=user, team=team, model=model)
        if as_json:
            return o.emit_json(_grant_json(made))
        where = f"model '{made.model}'" if made.model else "every model"
        o.out.print(
            f"granted {Role(made.role).label} on {where} to {made.subject_kind} "
            f"'{made.subject}' (grant {made.id})"
        )

    @grant_app.command("list")
    def grant_list(
        model: str | None = typer.Option(None, "--model", help="Only grants on this model."),
        subject: str | None = typer.Option(None, "--subject", help="Only this user's or team's."),
        as_json: bool = JSON,
    ) -> None:
        """List grants."""
        grants = state.client().list_grants(model=model, subject=subject)
        if as_json:
            return o.emit_json([_grant_json(g) for g in grants])
        o.table(
            f"{len(grants)} grant(s)",
            ["id", "role", "to", "model", "by", "created"],
            [
                (g.id, Role(g.role).label, f"{g.subject_kind} {g.subject}", g.model or "(all)",
                 g.created_by, _when(g.created_at))
                for g in grants
            ],
        )  # fmt: skip

    @grant_app.command("revoke")
    def grant_revoke(grant_id: int = typer.Argument(..., metavar="ID")) -> None:
        """Remove a grant (see its id in 'corral grant list')."""
        state.client().revoke_grant(grant_id)
        o.out.print(f"revoked grant {grant_id}")


def _install_tokens(state: Any) -> None:
    @token_app.command("create")
    def token_create(
        name: str = typer.Option(..., "--name", help="What the token is for (e.g. laptop, ci)."),
        user: str | None = typer.Option(None, "--user", help="For this user (default: you)."),
        expires: str | None = typer.Option(
            None, "--expires", help="Lifetime such as 12h, 30d (default: never expires)."
        ),
        model: list[str] = typer.Option(
            [], "--model", help="Limit the token to this model (repeatable)."
        ),
        read_only: bool = typer.Option(False, "--read-only", help="Read and predict only."),
        tier: str = typer.Option(
            "bronze", "--tier", help="Admission tier: gold, silver or bronze."
        ),
        rate_limit: str = typer.Option(
            "", "--rate-limit", help="Requests allowed, e.g. 50/second (default: the server's)."
        ),
        rows_per_day: int | None = typer.Option(
            None, "--rows-per-day", help="Prediction rows allowed per day."
        ),
        as_json: bool = JSON,
    ) -> None:
        """Create an API token and print its secret, which is shown only this once."""
        token, secret = state.client().create_token(
            user,
            name=name,
            expires_in=_expiry(expires),
            models=list(model) or None,
            read_only=read_only,
            tier=tier,
            rate_limit=rate_limit,
            rows_per_day=rows_per_day,
        )
        if as_json:
            return o.emit_json({**o.jsonable(token), "secret": secret})
        until = f"until {_when(token.expires_at)} UTC" if token.expires_at else "with no expiry"
        o.err.print(
            f"created token {token.id} '{token.name}' for user '{token.user}' {until}",
            markup=False,
        )
        o.err.print("warning: the secret is shown only once; store it now", markup=False)
        sys.stdout.write(secret + "\n")

    @token_app.command("list")
    def token_list(
        user: str | None = typer.Option(None, "--user", help="This user's (admins only)."),
        as_json: bool = JSON,
    ) -> None:
        """List tokens (never their secrets)."""
        tokens = state.client().list_tokens(user)
        if as_json:
            return o.emit_json(tokens)
        o.table(
            f"{len(tokens)} token(s)",
            ["id", "user", "name", "state", "expires", "models", "limits"],
            [
                (
                    t.id,
                    t.user,
                    t.name if t.kind == "api" else f"{t.name} (session)",
                    _token_state(t),
                    t.expires_at.strftime("%Y-%m-%d") if t.expires_at else "never",
                    ", ".join(t.models) if t.models is not None else "(all)",
                    _limits(t),
                )
                for t in tokens
            ],
        )

    @token_app.command("revoke")
    def token_revoke(token_id: str = typer.Argument(..., metavar="ID")) -> None:
        """Revoke a token: it stops working at once."""
        state.client().revoke_token(token_id)
        o.out.print(f"revoked token {token_id}")


def _limits(token: Any) -> str:
    parts = [token.tier]
    if token.read_only:
        parts.append("read-only")
    if token.rate_limit:
        parts.append(token.rate_limit)
    if token.rows_per_day is not None:
        parts.append(f"{token.rows_per_day} rows/day")
    return ", ".join(parts)


def install(app: typer.Typer, state: Any) -> None:
    """Attach the identity commands to the root app."""
    _install_users(state)
    _install_teams(state)
    _install_grants(state)
    _install_tokens(state)

    @app.command("whoami")
    def whoami(as_json: bool = JSON) -> None:
        """Who the CLI acts as: name, roles, teams and the token's limits."""
        me = state.client().whoami()
        if as_json:
            return o.emit_json(me)
        roles = ", ".join(f"{m}={r}" for m, r in me["model_roles"].items())
        o.fields(
            me["name"],
            {
                "global role": me["global_role"] or "(none)",
                "model roles": roles or "(none)",
                "teams": ", ".join(me["teams"]) or "(none)",
                "token": me["token_id"] or "(none)",
                "models": ", ".join(me["scope"]) if me["scope"] is not None else "(all)",
                "read only": "yes" if me["read_only"] else "no",
                "tier": me["tier"],
                "rate limit": me["rate_limit"] or "(server default)",
                "rows per day": me["rows_per_day"] or "(no limit)",
            },
        )

    app.add_typer(user_app, name="user")
    app.add_typer(team_app, name="team")
    app.add_typer(grant_app, name="grant")
    app.add_typer(token_app, name="token")
