"""Second opinions from maintained scanners, when installed (never a dependency of Corral).

Only picklescan is wired: it is a library with a Python API. Its verdict is recorded beside
Corral's; an error, or a file it did not scan, is never read as clean.
"""

from __future__ import annotations

from pathlib import Path

from corral.security._report import Finding, Verdict

__all__ = ["PICKLE_BEARING", "picklescan_opinion"]

# Top-level formats that hold pickles, directly or inside.
PICKLE_BEARING = {"pickle", "npy-object", "pytorch", "zip", "npz", "skops", "zlib", "gzip",
                  "bz2", "xz", "joblib-zf"}  # fmt: skip


def picklescan_opinion(path: Path, label: str) -> Finding | None:
    """picklescan's verdict on one file, or None when picklescan is not installed."""
    try:
        from picklescan.scanner import scan_file_path
    except ImportError:
        return None
    try:
        result = scan_file_path(str(path))
    except Exception as exc:  # a third-party scanner: any failure is a verdict of its own
        reason = f"picklescan failed: {type(exc).__name__}: {exc}"
        return Finding(label, "pickle", Verdict.UNSAFE, (reason,), scanner="picklescan")
    if result.scan_err:
        reason = "picklescan reported a scan error"
        return Finding(label, "pickle", Verdict.UNSAFE, (reason,), scanner="picklescan")
    if result.issues_count or result.infected_files:
        dangerous = sorted(
            {f"{g.module}.{g.name}" for g in result.globals if "dangerous" in str(g.safety).lower()}
        )
        reasons = tuple(f"picklescan: dangerous global {name}" for name in dangerous) or (
            f"picklescan found {result.issues_count} issue(s)",
        )
        return Finding(label, "pickle", Verdict.UNSAFE, reasons, scanner="picklescan")
    if not result.scanned_files:
        reason = "picklescan did not scan it (it goes by file extension)"
        return Finding(label, "pickle", Verdict.UNKNOWN, (reason,), scanner="picklescan")
    return Finding(label, "pickle", Verdict.SAFE, scanner="picklescan")
