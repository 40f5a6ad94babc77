"""Markdown for a drift benchmark run (drift_bench.py's ``drift.jsonl`` + ``meta.json``).

Usage: python bench/drift_report.py RUN_DIR [--insert docs/benchmarks.md] [--command TEXT]
Writes ``RUN_DIR/drift-report.md`` and prints it; ``--insert FILE`` puts it under the file's
``## Drift`` heading (between markers, replacing an earlier insert; the heading is appended at
the end of the file when missing). Nothing else in the file changes.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

START, END = "<!-- drift-bench:start -->", "<!-- drift-bench:end -->"
HEADING = "## Drift"
MIB = 2**20
LABELS = {
    "corral": "Corral `drift_report` (FileColumns)",
    "floor": "numpy/scipy floor (tests + quality + histograms)",
    "floor-tests": "numpy/scipy floor (tests only)",
    "evidently": "Evidently `DataDriftPreset`",
}
TARGET_FLOOR, TARGET_EVIDENTLY, TARGET_MEMORY = 1.5, 20.0, 1.3


def load(run: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    meta = json.loads((run / "meta.json").read_text())
    results = [json.loads(line) for line in (run / "drift.jsonl").read_text().splitlines() if line]
    return meta, results


def _mib(value: float | None) -> str:
    return "–" if value is None else f"{value / MIB:,.0f}"


def _s(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _ratio(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}×"


def summary(results: list[dict[str, Any]], rows: int, system: str) -> dict[str, Any] | None:
    """Median seconds, range, peak RSS (max over runs) and flagged columns of one cell."""
    runs = [r for r in results if r["rows"] == rows and r["system"] == system]
    good = [r for r in runs if "error" not in r]
    if not runs:
        return None
    if not good:
        return {"error": runs[-1]["error"], "n": 0}
    seconds = [r["seconds"] for r in good]
    flagged = [tuple(r["flagged"]) for r in good]
    return {
        "n": len(good),
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
        "peak_rss": max(r["peak_rss"] for r in good),
        "rss_after_imports": max(r["rss_after_imports"] for r in good),
        "import_seconds": statistics.median(r["import_seconds"] for r in good),
        "flagged": list(flagged[-1]),
        "same_flags": len(set(flagged)) == 1,
        "load": [r["load_1m"] for r in good],
        "versions": good[-1].get("versions") or {},
    }


def paired(results: list[dict[str, Any]], rows: int, a: str, b: str) -> list[float]:
    """``a`` time / ``b`` time inside each round (the two ran one after the other)."""
    by_round: dict[int, dict[str, float]] = {}
    for r in results:
        if r["rows"] == rows and r["system"] in (a, b) and "error" not in r:
            by_round.setdefault(r["round"], {})[r["system"]] = r["seconds"]
    return [t[a] / t[b] for _, t in sorted(by_round.items()) if a in t and b in t]


def _verdict(flagged: list[str], drifted: list[str]) -> tuple[list[str], list[str]]:
    misses = [c for c in drifted if c not in flagged]
    false_alarms = [c for c in flagged if c not in drifted]
    return misses, false_alarms


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) if names else "none"


def results_table(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    drifted = meta["truth"]["drifted"]
    head = (
        "| rows | system | median s (runs) | min–max s | peak RSS MiB | RSS after imports MiB "
        "| flagged | misses | false alarms |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for rows in map(int, meta["sizes"]):
        for system in LABELS:
            cell = summary(results, rows, system)
            if cell is None:
                continue
            if cell["n"] == 0:
                lines.append(
                    f"| {rows:,} | {LABELS[system]} | failed: {cell['error'][-1]} | | | | | | |"
                )
                continue
            misses, false_alarms = _verdict(cell["flagged"], drifted)
            flagged = f"{len(cell['flagged'])}" + ("" if cell["same_flags"] else " (varied)")
            lines.append(
                f"| {rows:,} | {LABELS[system]} | {_s(cell['median'])} ({cell['n']}) "
                f"| {_s(cell['min'])}–{_s(cell['max'])} | {_mib(cell['peak_rss'])} "
                f"| {_mib(cell['rss_after_imports'])} | {flagged} | {_names(misses)} "
                f"| {_names(false_alarms)} |"
            )
    return "\n".join(lines)


def loaded(meta: dict[str, Any], rows: int) -> int:
    size = meta["sizes"][str(rows)]
    return int(size["reference"]["arrow"] + size["current"]["arrow"])


def ratios_table(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    lines = [
        "| rows | loaded data MiB (both tables, Arrow) | Corral / floor: medians; per round "
        "| Corral / floor (tests only): medians; per round | Evidently / Corral: medians; per "
        "round | Corral peak RSS / loaded data | Corral (peak RSS − RSS after imports) / loaded "
        "data |",
        "|---|---|---|---|---|---|---|",
    ]
    for rows in map(int, meta["sizes"]):
        corral = summary(results, rows, "corral")
        floor = summary(results, rows, "floor")
        tests = summary(results, rows, "floor-tests")
        evidently = summary(results, rows, "evidently")
        data = loaded(meta, rows)

        def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
            if not a or not b or not a["n"] or not b["n"]:
                return None
            return float(a["median"] / b["median"])

        ok = corral is not None and corral["n"] > 0
        peak = corral["peak_rss"] / data if ok and corral else None
        extra = (corral["peak_rss"] - corral["rss_after_imports"]) / data if ok and corral else None

        def rounds(a: str, b: str, digits: int = 2, rows: int = rows) -> str:
            values = paired(results, rows, a, b)
            return ", ".join(f"{v:.{digits}f}" for v in values) or "–"

        lines.append(
            f"| {rows:,} | {_mib(data)} "
            f"| {_ratio(ratio(corral, floor))}; {rounds('corral', 'floor')} "
            f"| {_ratio(ratio(corral, tests))}; {rounds('corral', 'floor-tests')} "
            f"| {_ratio(ratio(evidently, corral), 1)}; {rounds('evidently', 'corral', 1)} "
            f"| {_ratio(peak)} | {_ratio(extra)} |"
        )
    return "\n".join(lines)


def targets(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    drifted = meta["truth"]["drifted"]
    sizes = list(map(int, meta["sizes"]))
    big = max(sizes)
    corral = summary(results, big, "corral")
    floor = summary(results, big, "floor")
    evidently = summary(results, big, "evidently")
    out = [f"| target (at {big:,} rows unless said) | measured | met |", "|---|---|---|"]
    if corral and corral["n"]:
        if floor and floor["n"]:
            r = corral["median"] / floor["median"]
            per_round = paired(results, big, "corral", "floor")
            worst = max(per_round) if per_round else r
            out.append(
                f"| under {TARGET_FLOOR}× the numpy floor | {r:.2f}× "
                f"({_s(corral['median'])} s vs {_s(floor['median'])} s; worst round "
                f"{worst:.2f}×) | {'yes' if max(r, worst) < TARGET_FLOOR else 'no'} |"
            )
        if evidently and evidently["n"]:
            r = evidently["median"] / corral["median"]
            per_round = paired(results, big, "evidently", "corral")
            worst = min(per_round) if per_round else r
            out.append(
                f"| at least {TARGET_EVIDENTLY:.0f}× faster than Evidently | {r:.1f}× "
                f"({_s(evidently['median'])} s vs {_s(corral['median'])} s; worst round "
                f"{worst:.1f}×) | {'yes' if r >= TARGET_EVIDENTLY else 'no'}"
                f"{'' if worst >= TARGET_EVIDENTLY else ' on the medians, not in every round'} |"
            )
        data = loaded(meta, big)
        r = corral["peak_rss"] / data
        out.append(
            f"| peak memory at most {TARGET_MEMORY}× the loaded data | {r:.2f}× "
            f"({_mib(corral['peak_rss'])} MiB vs {_mib(data)} MiB) "
            f"| {'yes' if r <= TARGET_MEMORY else 'no'} |"
        )
    for system in ("corral", "evidently", "floor"):
        cells = [summary(results, rows, system) for rows in sizes]
        if not all(c and c["n"] for c in cells):
            continue
        perfect = all(
            _verdict(c["flagged"], drifted) == ([], []) and c["same_flags"] for c in cells if c
        )
        out.append(
            f"| {LABELS[system]}: the 5 drifted columns flagged and none of the 20 stable ones, "
            f"at every size | {'all sizes' if perfect else 'see the table'} "
            f"| {'yes' if perfect else 'no'} |"
        )
    return "\n".join(out)


def cli_lines(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    drifted = meta["truth"]["drifted"]
    out = []
    for r in results:
        if r["system"] != "corral-cli":
            continue
        if "error" in r:
            out.append(f"- {r['rows']:,} rows: failed ({' / '.join(r['error'])})")
            continue
        misses, false_alarms = _verdict(r.get("flagged", []), drifted)
        out.append(
            f"- {r['rows']:,} rows: {_s(r['process_seconds'])} s for the whole process, peak RSS "
            f"{_mib(r.get('peak_rss'))} MiB, {len(r.get('flagged', []))} flagged "
            f"(misses: {_names(misses)}; false alarms: {_names(false_alarms)})"
        )
    return "\n".join(out)


def _load_range(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    loads = [r["load_1m"] for r in results if "load_1m" in r]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "?"


def render(run: Path, command: str | None = None) -> str:
    meta, results = load(run)
    truth = meta["truth"]
    v = meta["versions"]
    ev: dict[str, str] = next(
        (r["versions"] for r in results if r["system"] == "evidently" and r.get("versions")),
        {},
    )
    big = max(map(int, meta["sizes"]))
    ev_big = summary(results, big, "evidently")
    drift_lines = "\n".join(f"  - `{c}`: {d}" for c, d in truth["drift"].items())
    parts = [
        f"### Run `{run.name}` ({meta['started'][:16].replace('T', ' ')} UTC)",
        f"Command: `{command or 'bash bench/run_drift.sh'}`. {meta['nproc']} cores, shared with "
        f"other agents' work during the run: 1-minute load average {_load_range(meta, results)} "
        "at the start of the runs. Python "
        f"{v.get('python')}; Corral {v.get('corral')} (working tree) with numpy {v.get('numpy')}, "
        f"scipy {v.get('scipy')}, pyarrow {v.get('pyarrow')}, duckdb {v.get('duckdb')}; "
        f"Evidently {ev.get('evidently', '?')} with pandas {ev.get('pandas', '?')} in "
        "`bench/.venvs/evidently`. "
        f"{meta['runs']} runs per cell"
        + (
            f" ({ev_big['n']} for Evidently at {big:,} rows)"
            if ev_big and ev_big.get("n") and ev_big["n"] != meta["runs"]
            else ""
        )
        + ", the order of the systems flipped every round (Corral always next to the floor).",
        f"Data (seed {truth['seed']}): 20 numeric columns `n00`–`n19` (`{truth['skewed']}` "
        "lognormal, σ = 0.5; `n05` 1 % missing) and 5 categorical string columns `c0`–`c4`; "
        "the current table drifts in exactly 5:\n" + drift_lines,
        results_table(meta, results),
        ratios_table(meta, results),
        "#### Targets\n\n" + targets(meta, results),
        "#### `corral monitor drift --reference … --current … --json`"
        " (one run, for information)\n\n" + (cli_lines(meta, results) or "- not run"),
    ]
    return "\n\n".join(parts) + "\n"


def insert(doc: Path, text: str) -> None:
    """Put ``text`` under the ``## Drift`` heading, replacing an earlier insert."""
    current = doc.read_text()
    block = f"{START}\n{text}{END}"
    if START in current and END in current:
        head, rest = current.split(START, 1)
        doc.write_text(head + block + rest.split(END, 1)[1])
        return
    marker = f"\n{HEADING}\n"
    if marker in current:
        head, tail = current.split(marker, 1)
        doc.write_text(f"{head}{marker}\n{block}\n\n{tail.lstrip(chr(10))}")
    else:
        doc.write_text(current.rstrip("\n") + f"\n\n{HEADING}\n\n{block}\n")


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    run = Path(argv[0])
    command = argv[argv.index("--command") + 1] if "--command" in argv else None
    text = render(run, command)
    (run / "drift-report.md").write_text(text)
    print(text)
    if "--insert" in argv:
        insert(Path(argv[argv.index("--insert") + 1]), text)


if __name__ == "__main__":
    main(sys.argv[1:])
