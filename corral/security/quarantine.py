"""The registration scan: ``scan_folder``'s report in the shape the registry stores.

``corral.wiring`` hands :func:`scan_for_registration` to ``RegistryService`` as its ``scan``
hook; the registry (which may not import this package) publishes an unsafe version quarantined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corral.registry.quarantine import ScanOutcome
from corral.security._report import Finding, ScanReport
from corral.security.scanning import scan_folder

__all__ = ["report_json", "scan_for_registration", "summarize"]

# At most this many findings are named in the one-line summary (the report has them all).
_NAMED = 3


def scan_for_registration(folder: Path) -> ScanOutcome:
    """Scan a version's files; unknown formats count as unsafe only when they hold pickles."""
    report = scan_folder(folder)
    return ScanOutcome(safe=report.safe, summary=summarize(report), report=report_json(report))


def summarize(report: ScanReport) -> str:
    """One line: the verdict, and the first unsafe files with their reasons."""
    files = len(report.findings)
    if report.safe:
        return f"safe: {files} file(s) scanned, nothing would run code when loaded"
    problems = report.problems
    named = "; ".join(_describe(f) for f in problems[:_NAMED])
    more = f"; and {len(problems) - _NAMED} more" if len(problems) > _NAMED else ""
    return f"unsafe, {len(problems)} of {files} file(s): {named}{more}"


def _describe(finding: Finding) -> str:
    reasons = ", ".join(finding.reasons) or finding.verdict.value
    return f"{finding.path} ({finding.format}): {reasons}"


def report_json(report: ScanReport) -> dict[str, Any]:
    """The report as stored on the version."""
    return {
        "verdict": report.verdict.value,
        "strict": report.strict,
        "findings": [
            {
                "path": f.path,
                "format": f.format,
                "verdict": f.verdict.value,
                "reasons": list(f.reasons),
                "scanner": f.scanner,
            }
            for f in report.findings
        ],
    }
