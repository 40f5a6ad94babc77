"""Server-side commands: server, quickstart, db upgrade, gc."""

from __future__ import annotations

from typing import Any

import typer

from corral.cli import _output as o

db_app = typer.Typer(no_args_is_help=True, help="The metadata database.")


def _say(line: str) -> None:
    # soft_wrap: a token must stay on one line to be copied (stderr is 80 columns in a pipe).
    o.err.print(line, markup=False, highlight=False, soft_wrap=True)


def _serve(settings: Any, host: str, port: int, workers: int = 1) -> None:
    from corral.api.serve import serve

    o.err.print(f"Corral at http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    serve(settings, host, port, workers=workers, say=_say)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def install(app: typer.Typer, state: Any) -> None:
    """Attach the server commands to the root app."""

    @app.command("server")
    def server(
        host: str | None = typer.Option(None, "--host", help="Address to bind (127.0.0.1)."),
        port: int | None = typer.Option(None, "--port", "-p", help="Port (8080)."),
        workers: int = typer.Option(
            1, "--workers", min=1, help="Worker processes sharing the port (1: this process)."
        ),
    ) -> None:
        """Run the Corral server (REST API, web UI) on the configured stores."""
        settings = state.settings()
        _serve(settings, host or settings.host, port or settings.port, workers)

    @app.command("quickstart")
    def quickstart(
        host: str | None = typer.Option(None, "--host"),
        port: int | None = typer.Option(None, "--port", "-p"),
        no_serve: bool = typer.Option(False, "--no-serve", help="Fill the demo, do not serve."),
    ) -> None:
        """Fill the local Corral with a demo (scikit-learn models) and start the server."""
        from corral.client import Client
        from corral.client.demo import seed_demo

        settings = state.settings()
        host = host or settings.host
        port = port or settings.port
        o.err.print(f"Corral home: {settings.home}")
        with Client(settings=settings) as client:
            seed_demo(client, lambda line: o.err.print("  " + line, markup=False))
        base = f"http://{host}:{port}"
        o.out.print(
            "\nOpen:\n"
            f"  {base}/models                          the model catalog\n"
            f"  {base}/models/iris-classifier          versions, aliases, history, consumers\n"
            f"  {base}/docs                            the REST API\n"
            "Try:\n"
            f"  corral --server {base} alias history iris-classifier champion\n"
            f"  corral --server {base} consumer resolve web-app iris-classifier\n",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        if not no_serve:
            from corral.api.serve import bootstrap_admin

            created = bootstrap_admin(settings, _say)
            if settings.anonymous_role == "none" and _is_loopback(host):
                # The demo is browsable at once; nothing beyond this machine can reach it.
                settings = settings.model_copy(update={"anonymous_role": "viewer"})
                token = "the token above" if created else "a token (CORRAL_TOKEN)"
                _say(
                    "anonymous read access is open on loopback only; "
                    f"predictions and writes need {token}"
                )
            _serve(settings, host, port)

    @db_app.command("upgrade")
    def db_upgrade() -> None:
        """Apply the database migrations (the server also does on start)."""
        from corral.store.sql import make_engine, upgrade_database

        settings = state.settings()
        engine = make_engine(settings.resolved_database_url)
        try:
            upgrade_database(engine)
        finally:
            engine.dispose()
        o.out.print("database is at the latest schema")

    app.add_typer(db_app, name="db")

    @app.command("gc")
    def gc(
        grace: float | None = typer.Option(
            None,
            "--grace",
            help="Seconds: leave younger data alone (default: the configured grace).",
        ),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Remove abandoned uploads and stored bytes no version references."""
        report = state.client().gc(grace)  # None: the store's (or server's) own setting
        if as_json:
            return o.emit_json(report)
        o.out.print(
            f"removed {report.staging_removed} staging area(s), {report.blobs_removed} blob(s), "
            f"{report.manifests_removed} manifest(s); freed {report.bytes_freed} bytes"
        )
