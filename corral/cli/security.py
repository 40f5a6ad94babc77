"""Security commands: ``corral version scan``, ``version release`` and ``version quarantine``."""

from __future__ import annotations

from typing import Any

import typer

from corral.cli import _output as o
from corral.cli.registry import version_app

_REASON_HELP = "Who reviewed the version's files, and what they found (required; audited)."


def install(app: typer.Typer, state: Any) -> None:
    """Attach the security verbs to the version commands (``app`` is the root, unused)."""

    @version_app.command("scan")
    def version_scan(
        name: str,
        ref: str = typer.Argument("latest"),
        strict: bool = typer.Option(
            False, "--strict", help="Rescan, treating files of an unknown format as unsafe."
        ),
        rescan: bool = typer.Option(
            False, "--rescan", help="Fetch the files and scan them again (not quarantined ones)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """Show the scan report stored at registration (or scan now); exit 1 when unsafe."""
        client = state.client()
        version = client.get_version(name, ref)
        stored = version.scan
        if stored is not None and not (strict or rescan):
            report = stored
        else:
            from corral.security import scan_folder
            from corral.security.quarantine import report_json, summarize

            scanned = scan_folder(client.fetch(name, ref), strict=strict)
            report = {**report_json(scanned), "summary": summarize(scanned)}
            report["safe"] = scanned.safe
        safe = report.get("verdict") == "safe"
        if as_json:
            o.emit_json({**report, "quarantined": version.quarantined})
        else:
            o.table(
                f"{name}@{ref}: {report.get('verdict')}",
                ["path", "format", "verdict", "reasons"],
                [
                    (f["path"], f["format"], f["verdict"], "; ".join(f["reasons"]))
                    for f in report.get("findings", [])
                ],
            )
            if report.get("summary"):
                o.out.print(str(report["summary"]), markup=False)
        if not safe:
            problems = [f for f in report.get("findings", []) if f.get("verdict") == "unsafe"]
            o.err.print(
                f"error: {name}@{ref} is unsafe: {len(problems) or 'some'} file(s) would run code "
                "or could not be checked (see the reasons)",
                markup=False,
            )
        if version.quarantined:
            o.err.print(
                f"{name} version {version.number} is quarantined: it is neither served nor "
                f"downloaded until released (`corral version release {name} {version.number} "
                '--reason "..."`)',
                markup=False,
            )
        if not safe:
            raise typer.Exit(1)

    @version_app.command("release")
    def version_release(
        name: str,
        ref: str,
        reason: str = typer.Option("", "--reason", "-r", help=_REASON_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """Release a quarantined version so it serves and downloads again (admin; audited)."""
        version = state.client().release_version(name, ref, reason)
        if as_json:
            return o.emit_json(version)
        o.out.print(f"{name} version {version.number} released from quarantine")

    @version_app.command("quarantine")
    def version_quarantine(
        name: str,
        ref: str,
        reason: str = typer.Option("", "--reason", "-r", help=_REASON_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """Quarantine a version by hand: it is neither served nor downloaded (audited)."""
        version = state.client().quarantine_version(name, ref, reason)
        if as_json:
            return o.emit_json(version)
        o.out.print(f"{name} version {version.number} quarantined")
