"""Security commands: ``corral version scan``."""

from __future__ import annotations

from typing import Any

import typer

from corral.cli import _output as o
from corral.cli.registry import version_app


def install(app: typer.Typer, state: Any) -> None:
    """Attach ``version scan`` to the version commands (``app`` is the root, unused)."""

    @version_app.command("scan")
    def version_scan(
        name: str,
        ref: str = typer.Argument("latest"),
        strict: bool = typer.Option(
            False, "--strict", help="Treat files of an unknown format as unsafe."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """Scan a version's files for code they would run when loaded; exit 1 when unsafe."""
        from corral.security import scan_folder

        folder = state.client().fetch(name, ref)
        report = scan_folder(folder, strict=strict)
        if as_json:
            o.emit_json(report)
        else:
            o.table(
                f"{name}@{ref}: {report.verdict.value}",
                ["path", "format", "verdict", "reasons"],
                [
                    (f.path, f.format, f.verdict.value, "; ".join(f.reasons))
                    for f in report.findings
                ],
            )
        if not report.safe:
            count = len(report.problems)
            o.err.print(
                f"error: {name}@{ref} is unsafe: {count} file(s) would run code or could not be "
                "checked (see the reasons)",
                markup=False,
            )
            raise typer.Exit(1)
