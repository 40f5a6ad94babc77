"""Registry commands: model, register, version, alias, consumer, config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from corral.cli import _output as o
from corral.errors import InvalidArgument

JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")

model_app = typer.Typer(no_args_is_help=True, help="Create, list, show and delete models.")
version_app = typer.Typer(no_args_is_help=True, help="Versions: list, show, download, verify…")
alias_app = typer.Typer(no_args_is_help=True, help="Aliases: set, rollback, history, list.")
consumer_app = typer.Typer(no_args_is_help=True, help="Consumers pinned to a version or alias.")
config_app = typer.Typer(no_args_is_help=True, help="Versioned deployment configurations.")


def _fmt_metrics(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in values.items())


def _config_move(event: Any) -> str:
    before = f"{event.from_config}@{event.from_config_revision}" if event.from_config else "-"
    after = f"{event.to_config}@{event.to_config_revision}" if event.to_config else "-"
    return "" if before == after == "-" else f"{before} -> {after}"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def install(app: typer.Typer, state: Any) -> None:
    """Attach the registry commands to the root app."""

    # -- model ------------------------------------------------------------------------
    @model_app.command("create")
    def model_create(
        name: str,
        description: str = typer.Option("", "--description", "-d"),
        owner: str = typer.Option("", "--owner"),
        tag: list[str] = typer.Option([], "--tag", help="key=value, repeatable"),
        task: str = typer.Option("", "--task"),
        framework: str = typer.Option("", "--framework"),
        license_: str = typer.Option("", "--license"),
        source: str = typer.Option("internal", "--source", help="internal or third-party"),
        as_json: bool = JSON,
    ) -> None:
        """Create a model."""
        model = state.client().create_model(
            name,
            description=description,
            owner=owner,
            tags=o.parse_pairs("tag", tag),
            task=task,
            framework=framework,
            license=license_,
            source=source,
        )
        o.emit_json(model) if as_json else o.out.print(f"created model '{model.name}'")

    @model_app.command("list")
    def model_list(
        query: str = typer.Option("", "--query", "-q", help="substring of name or description"),
        tag: list[str] = typer.Option([], "--tag", help="key=value, repeatable"),
        limit: int = typer.Option(100, "--limit"),
        offset: int = typer.Option(0, "--offset"),
        as_json: bool = JSON,
    ) -> None:
        """List models."""
        page = state.client().list_models(query or None, o.parse_pairs("tag", tag), offset, limit)
        if as_json:
            return o.emit_json(page)
        o.table(
            f"{page.total} model(s)",
            ["name", "latest", "source", "owner", "task", "description"],
            [
                (m.name, m.latest_version, m.source.value, m.owner, m.task, m.description[:60])
                for m in page.items
            ],
        )

    @model_app.command("show")
    def model_show(name: str, as_json: bool = JSON) -> None:
        """Show a model with its aliases."""
        client = state.client()
        model = client.get_model(name)
        aliases = client.list_aliases(name)
        if as_json:
            return o.emit_json({"model": model, "aliases": aliases})
        o.fields(f"model {name}", {k: v for k, v in o.jsonable(model).items() if k != "name"})
        o.table("aliases", ["alias", "version"], [(a.name, a.version) for a in aliases])

    @model_app.command("delete")
    def model_delete(
        name: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")
    ) -> None:
        """Delete a model with all its versions, aliases and consumers."""
        if not yes:
            typer.confirm(f"Delete model '{name}' and all its versions?", abort=True)
        state.client().delete_model(name)
        o.out.print(f"deleted model '{name}'")

    # -- register / version -------------------------------------------------------------
    def register(
        name: str = typer.Argument(..., help="Model name (created if missing)."),
        path: Path = typer.Argument(..., help="A file or a folder of files."),
        flavor: str = typer.Option("", "--flavor", help="sklearn, onnx, … (detected if omitted)"),
        metric: list[str] = typer.Option([], "--metric", help="name=value, repeatable"),
        param: list[str] = typer.Option([], "--param", help="name=value, repeatable"),
        tag: list[str] = typer.Option([], "--tag", help="key=value, repeatable"),
        alias: str | None = typer.Option(None, "--alias", help="Point this alias at it."),
        example: Path | None = typer.Option(None, "--example", help="JSON or CSV input example."),
        description: str = typer.Option("", "--description", "-d"),
        source_uri: str = typer.Option("", "--source-uri"),
        parent: int | None = typer.Option(None, "--parent", help="Parent version number."),
        as_json: bool = JSON,
    ) -> None:
        """Upload a file or folder as the next version of a model."""
        metrics: dict[str, float] = {}
        for key, value in o.parse_pairs("metric", metric).items():
            try:
                metrics[key] = float(value)
            except ValueError as exc:
                raise InvalidArgument(f"--metric {key}={value}: not a number") from exc
        with o.progress_bars(not as_json) as progress:
            version = state.client().register(
                name,
                path,
                flavor=flavor,
                metrics=metrics,
                params=o.parse_pairs("param", param),
                tags=o.parse_pairs("tag", tag),
                alias=alias,
                example=example,
                description=description,
                source_uri=source_uri,
                parent_version=parent,
                progress=progress,
            )
        if as_json:
            return o.emit_json(version)
        where = f" as '{alias}'" if alias else ""
        o.out.print(
            f"registered '{name}' version {version.number}{where} "
            f"({len(version.files)} file(s), {version.size} bytes, flavor {version.flavor})"
        )

    app.command("register")(register)
    version_app.command("create")(register)

    @version_app.command("list")
    def version_list(
        name: str,
        limit: int = typer.Option(100, "--limit"),
        offset: int = typer.Option(0, "--offset"),
        as_json: bool = JSON,
    ) -> None:
        """List the versions of a model, newest first."""
        page = state.client().list_versions(name, offset, limit)
        if as_json:
            return o.emit_json(page)
        o.table(
            f"{page.total} version(s) of {name}",
            ["version", "status", "flavor", "metrics", "created", "by", "deprecated"],
            [
                (
                    v.number,
                    v.status.value,
                    v.flavor,
                    _fmt_metrics(v.metrics),
                    _when(v.created_at),
                    v.created_by,
                    v.deprecation.message if v.deprecation else "",
                )
                for v in page.items
            ],
        )

    @version_app.command("show")
    def version_show(name: str, ref: str = typer.Argument("latest"), as_json: bool = JSON) -> None:
        """Show a version (by number or alias) with its files."""
        version = state.client().get_version(name, ref)
        if as_json:
            return o.emit_json(version)
        shown = {k: v for k, v in o.jsonable(version).items() if k not in ("files", "signature")}
        o.fields(f"{name} version {version.number}", shown)
        o.table(
            "files", ["path", "size", "sha256"], [(f.path, f.size, f.sha256) for f in version.files]
        )
        if version.deprecation:
            o.err.print(f"warning: deprecated: {version.deprecation.message}", markup=False)

    @version_app.command("download")
    def version_download(
        name: str,
        ref: str = typer.Argument("latest"),
        dest: Path = typer.Option(Path("."), "--dest", "-o", help="Destination folder."),
        as_json: bool = JSON,
    ) -> None:
        """Download a version's files, each verified against its digest."""
        with o.progress_bars(not as_json) as progress:
            target = state.client().download(name, ref, dest, progress=progress)
        if as_json:
            return o.emit_json({"model": name, "ref": ref, "path": str(target)})
        o.out.print(f"downloaded {name}@{ref} to {target} (verified)")

    @version_app.command("verify")
    def version_verify(
        name: str, ref: str = typer.Argument("latest"), as_json: bool = JSON
    ) -> None:
        """Re-hash every stored byte of a version and check its signature."""
        report = state.client().verify_version(name, ref)
        if as_json:
            return o.emit_json(report)
        o.out.print(
            f"{name} version {report.version}: {report.files_checked} file(s), "
            f"{report.bytes_checked} bytes verified (manifest {report.manifest_digest[:12]})"
        )

    @version_app.command("sign")
    def version_sign(name: str, ref: str = typer.Argument("latest"), as_json: bool = JSON) -> None:
        """Sign a version after re-hashing its bytes (versions registered before signing)."""
        version = state.client().sign_version(name, ref)
        if as_json:
            return o.emit_json({"model": name, "version": version.number, "signed": True})
        o.out.print(f"{name} version {version.number}: signed")

    @version_app.command("deprecate")
    def version_deprecate(
        name: str,
        ref: str,
        message: str = typer.Option(
            "", "--message", "-m", help="What consumers should do (required unless --undo)."
        ),
        undo: bool = typer.Option(False, "--undo", help="Lift the deprecation."),
        as_json: bool = JSON,
    ) -> None:
        """Deprecate a version: it keeps serving and says so."""
        if not undo and not message.strip():
            raise InvalidArgument("give --message: tell consumers what to do instead")
        client = state.client()
        version = (
            client.undeprecate_version(name, ref)
            if undo
            else client.deprecate_version(name, ref, message)
        )
        if as_json:
            return o.emit_json(version)
        what = "no longer deprecated" if undo else "deprecated"
        o.out.print(f"{name} version {version.number} {what}")

    @version_app.command("trust")
    def version_trust(
        name: str,
        ref: str,
        reason: str = typer.Option(
            "", "--reason", "-r", help="Who reviewed the version's code, and what (required)."
        ),
        as_json: bool = JSON,
    ) -> None:
        """Let a version run the code it ships (python, pickle, joblib flavors); audited."""
        version = state.client().trust_version(name, ref, trusted=True, reason=reason)
        if as_json:
            return o.emit_json(version)
        o.out.print(f"{name} version {version.number} trusted")

    @version_app.command("untrust")
    def version_untrust(
        name: str,
        ref: str,
        reason: str = typer.Option("", "--reason", "-r", help="Recorded in the trust history."),
        as_json: bool = JSON,
    ) -> None:
        """Withdraw a version's trust: its code no longer loads; audited."""
        version = state.client().trust_version(name, ref, trusted=False, reason=reason)
        if as_json:
            return o.emit_json(version)
        o.out.print(f"{name} version {version.number} no longer trusted")

    # -- alias --------------------------------------------------------------------------
    @alias_app.command("set")
    def alias_set(
        name: str,
        alias: str,
        version: str,
        config: str | None = typer.Option(None, "--config", help="Deployment config name."),
        revision: int | None = typer.Option(None, "--revision", help="Config revision."),
        reason: str = typer.Option("", "--reason", "-r"),
        as_json: bool = JSON,
    ) -> None:
        """Point an alias at a version (and a config revision)."""
        moved = state.client().set_alias(
            name, alias, version, config=config, config_revision=revision, reason=reason
        )
        if as_json:
            return o.emit_json(moved)
        o.out.print(f"{name}@{alias} -> version {moved.version}")

    @alias_app.command("rollback")
    def alias_rollback(
        name: str,
        alias: str,
        reason: str = typer.Option("", "--reason", "-r"),
        as_json: bool = JSON,
    ) -> None:
        """Move an alias back to its previous target (version and config)."""
        moved = state.client().rollback_alias(name, alias, reason=reason)
        if as_json:
            return o.emit_json(moved)
        o.out.print(f"{name}@{alias} rolled back to version {moved.version}")

    @alias_app.command("delete")
    def alias_delete(name: str, alias: str, reason: str = typer.Option("", "--reason")) -> None:
        """Remove an alias (recorded in its history)."""
        state.client().delete_alias(name, alias, reason=reason)
        o.out.print(f"deleted {name}@{alias}")

    @alias_app.command("list")
    def alias_list(name: str, as_json: bool = JSON) -> None:
        """The aliases of a model."""
        aliases = state.client().list_aliases(name)
        if as_json:
            return o.emit_json(aliases)
        o.table(
            f"aliases of {name}",
            ["alias", "version", "config", "revision", "updated", "by"],
            [
                (a.name, a.version, a.config, a.config_revision, _when(a.updated_at), a.updated_by)
                for a in aliases
            ],
        )

    @alias_app.command("history")
    def alias_history(
        name: str,
        alias: str | None = typer.Argument(None),
        limit: int = typer.Option(100, "--limit"),
        as_json: bool = JSON,
    ) -> None:
        """Every move of an alias (or all aliases), newest first."""
        page = state.client().alias_history(name, alias, 0, limit)
        if as_json:
            return o.emit_json(page)
        o.table(
            f"alias history of {name}",
            ["when", "alias", "action", "from", "to", "config", "by", "reason"],
            [
                (
                    _when(e.at),
                    e.alias,
                    e.action.value,
                    e.from_version,
                    e.to_version,
                    _config_move(e),
                    e.actor,
                    e.reason,
                )
                for e in page.items
            ],
        )

    # -- consumer -----------------------------------------------------------------------
    @consumer_app.command("create")
    def consumer_create(
        consumer: str,
        model: str,
        version: int | None = typer.Option(None, "--version", help="Pin this version."),
        alias: str | None = typer.Option(None, "--alias", help="Follow this alias."),
        description: str = typer.Option("", "--description", "-d"),
        as_json: bool = JSON,
    ) -> None:
        """Register a consumer that pins a version or follows an alias."""
        created = state.client().create_consumer(
            consumer, model, version=version, alias=alias, description=description
        )
        if as_json:
            return o.emit_json(created)
        how = f"pinned to version {version}" if version is not None else f"following '{alias}'"
        o.out.print(f"consumer '{consumer}' of '{model}' {how}")

    @consumer_app.command("update")
    def consumer_update(
        consumer: str,
        model: str,
        version: int | None = typer.Option(None, "--version", help="Pin this version."),
        alias: str | None = typer.Option(None, "--alias", help="Follow this alias."),
        as_json: bool = JSON,
    ) -> None:
        """Move a consumer's pin: consumers move only when they choose to."""
        updated = state.client().update_consumer(consumer, model, version=version, alias=alias)
        if as_json:
            return o.emit_json(updated)
        o.out.print(f"consumer '{consumer}' of '{model}' updated")

    @consumer_app.command("list")
    def consumer_list(model: str | None = typer.Argument(None), as_json: bool = JSON) -> None:
        """Consumers of one model, or of all models."""
        consumers = state.client().list_consumers(model)
        if as_json:
            return o.emit_json(consumers)
        o.table(
            "consumers",
            ["consumer", "model", "pinned version", "follows alias", "description"],
            [(c.name, c.model, c.version, c.alias, c.description) for c in consumers],
        )

    @consumer_app.command("resolve")
    def consumer_resolve(consumer: str, model: str, as_json: bool = JSON) -> None:
        """What a consumer gets right now."""
        found = state.client().resolve_consumer(consumer, model)
        if as_json:
            return o.emit_json(found)
        how = "pinned" if found.pinned else f"via alias '{found.alias}'"
        o.out.print(f"{consumer} gets {model} version {found.version} ({how})")
        if found.deprecation:
            o.err.print(f"warning: deprecated: {found.deprecation.message}", markup=False)

    @consumer_app.command("delete")
    def consumer_delete(consumer: str, model: str) -> None:
        """Remove a consumer."""
        state.client().delete_consumer(consumer, model)
        o.out.print(f"deleted consumer '{consumer}' of '{model}'")

    # -- config -------------------------------------------------------------------------
    @config_app.command("create")
    def config_create(
        model: str,
        config: str,
        values: str = typer.Argument(..., help="JSON object, or @file.json"),
        comment: str = typer.Option("", "--comment", "-m"),
        as_json: bool = JSON,
    ) -> None:
        """Add a new immutable revision of a deployment config."""
        text = Path(values[1:]).read_text() if values.startswith("@") else values
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"config values are not valid JSON: {exc.msg}") from exc
        revision = state.client().create_config(model, config, parsed, comment=comment)
        if as_json:
            return o.emit_json(revision)
        o.out.print(f"{model} config '{config}' revision {revision.revision}")

    @config_app.command("show")
    def config_show(
        model: str,
        config: str,
        revision: int | None = typer.Option(None, "--revision"),
        as_json: bool = JSON,
    ) -> None:
        """One revision of a config (the latest by default)."""
        found = state.client().get_config(model, config, revision)
        if as_json:
            return o.emit_json(found)
        o.out.print(f"{model} config '{config}' revision {found.revision}")
        o.out.print_json(data=found.values)

    @config_app.command("list")
    def config_list(model: str, as_json: bool = JSON) -> None:
        """Every revision of every config of a model."""
        revisions = state.client().list_configs(model)
        if as_json:
            return o.emit_json(revisions)
        o.table(
            f"configs of {model}",
            ["config", "revision", "values", "by", "comment"],
            [
                (r.config, r.revision, json.dumps(r.values), r.created_by, r.comment)
                for r in revisions
            ],
        )

    app.add_typer(model_app, name="model")
    app.add_typer(version_app, name="version")
    app.add_typer(alias_app, name="alias")
    app.add_typer(consumer_app, name="consumer")
    app.add_typer(config_app, name="config")
