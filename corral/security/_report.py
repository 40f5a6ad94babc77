"""What a scan says: a verdict per file and for the whole folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Finding", "ScanLimits", "ScanReport", "Verdict"]


class Verdict(StrEnum):
    SAFE = "safe"
    UNSAFE = "unsafe"
    # A format the scanner does not know: unsafe under ``strict``.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Finding:
    """The verdict on one file, or one entry inside an archive (``model.pt!archive/data.pkl``)."""

    path: str
    format: str
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    scanner: str = "corral"


@dataclass(frozen=True)
class ScanLimits:
    """Bounds on archives, so a scan cannot be made to exhaust memory, disk or time."""

    # Total bytes an archive (or compressed stream) may expand to.
    max_uncompressed_bytes: int = 16 * 1024**3
    # Expansion ratio of one entry, checked once the entry is larger than ``ratio_floor_bytes``.
    max_ratio: float = 250.0
    ratio_floor_bytes: int = 16 * 1024**2
    max_entries: int = 100_000
    # Archives inside archives (a .npz inside a zip is depth 2).
    max_depth: int = 3


@dataclass(frozen=True)
class ScanReport:
    """The folder's verdict (``safe`` or ``unsafe``) and the finding on every file in it."""

    verdict: Verdict
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    strict: bool = False

    @property
    def safe(self) -> bool:
        return self.verdict is Verdict.SAFE

    @property
    def problems(self) -> tuple[Finding, ...]:
        """The findings that make the report unsafe."""
        return tuple(f for f in self.findings if _counts_unsafe(f, self.strict))


def _counts_unsafe(finding: Finding, strict: bool) -> bool:
    return finding.verdict is Verdict.UNSAFE or (strict and finding.verdict is Verdict.UNKNOWN)


def make_report(findings: list[Finding], strict: bool) -> ScanReport:
    unsafe = any(_counts_unsafe(f, strict) for f in findings)
    return ScanReport(Verdict.UNSAFE if unsafe else Verdict.SAFE, tuple(findings), strict)
