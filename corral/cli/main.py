"""The ``corral`` command: noun, then verb."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from corral.errors import CorralError

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Corral: registry, serving and monitoring of models.",
    rich_markup_mode=None,
)


class State:
    server: str | None = None
    token: str | None = None
    home: Path | None = None
    debug: bool = False
    _client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from corral.client import Client

            settings = self.settings()
            url = self.server or settings.server_url
            self._client = (
                Client(
                    url,
                    token=self.token or settings.token,
                    cache_dir=settings.resolved_cache_dir,
                )
                if url
                else Client(settings=settings)
            )
        return self._client

    def settings(self) -> Any:
        from corral.config import load_settings

        return load_settings(self.home)


state = State()


@app.callback()
def _root(
    server: str | None = typer.Option(
        None, "--server", envvar="CORRAL_SERVER_URL", help="Corral server URL (default: local home)"
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="CORRAL_TOKEN",
        help="API token sent to the --server",
    ),
    home: Path | None = typer.Option(
        None, "--home", envvar="CORRAL_HOME", help="Corral home folder (default ~/.corral)"
    ),
    debug: bool = typer.Option(
        False, "--debug", envvar="CORRAL_DEBUG", help="Show tracebacks of unexpected errors."
    ),
) -> None:
    state.server = server
    state.token = token
    state.home = home
    state.debug = debug


def _register_subcommands() -> None:
    from corral.cli import audit, identity, monitor, registry, security, server, serving

    registry.install(app, state)
    serving.install(app, state)
    server.install(app, state)
    audit.install(app, state)
    security.install(app, state)
    monitor.install(app, state)
    identity.install(app, state)


_register_subcommands()


def main() -> None:
    """Entry point: run the app, turning Corral errors into a message on stderr."""
    try:
        app()
    except CorralError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # the top: anything else is a bug or the environment
        if state.debug:
            raise
        sys.stderr.write(
            f"error: unexpected {type(exc).__name__}: {str(exc)[:2000]}\n"
            "(run with --debug or CORRAL_DEBUG=1 to see the traceback)\n"
        )
        sys.exit(1)
    finally:
        if state._client is not None:
            state._client.close()
