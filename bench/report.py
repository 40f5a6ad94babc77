"""Turn a registry benchmark run (JSON lines in bench/results/<run>/) into markdown tables.

Usage: python bench/report.py [bench/results/<run>]   (default: the latest run)
       python bench/report.py serving <bench/results/serving-...> [--insert FILE]
       (the serving benchmark's markdown: see serving_report.py)
Ratios are Corral time / MLflow time: below 1 Corral is faster ("N x faster").
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# (label, corral op, mlflow op)
ROWS = [
    (
        "(a) register a version: serialise + upload + create (MLflow: `log_model`, pinned reqs)",
        "a.register_serialise",
        "a.register_pinned",
    ),
    (
        "(a) same, MLflow `log_model` with defaults (inferred requirements)",
        "a.register_serialise",
        "a.register_defaults",
    ),
    ("(a) Corral `register` of an already serialised file", "a.register_file", None),
    ("(b) create a model", "b.create_model", "b.create_model"),
    (
        "(b) new version of a model (Corral uploads the file; MLflow `create_model_version` "
        "points at a logged model)",
        "b.create_version",
        "b.create_version",
    ),
    ("(b) search versions by tag (1 of 20 batches, 50 hits)", "b.search_by_tag", "b.search_by_tag"),
    ("(b) search versions by model name (20 hits)", "b.search_by_name", "b.search_by_name"),
    (
        "(b) search versions by name substring (20 hits)",
        "b.search_name_contains",
        "b.search_name_contains",
    ),
    ("(c) move an alias", "c.set_alias", "c.set_alias"),
    ("(c) resolve an alias, warm", "c.resolve_warm", "c.resolve_warm"),
    (
        "(c) resolve + fetch files, warm (Corral: cache hit, re-hashed)",
        "c.resolve_fetch_warm",
        "c.resolve_fetch_warm",
    ),
    (
        "(c) resolve + fetch files, warm, empty cache",
        "c.resolve_fetch_warm_nocache",
        "c.resolve_fetch_warm",
    ),
    (
        "(c) cold process: import + resolve + fetch (Corral: cache filled)",
        "c.cold_cached",
        "c.cold_total",
    ),
    ("(c) cold process, empty cache", "c.cold_empty_cache", "c.cold_total"),
    (
        "(c) cold process: of which imports + opening the client (Corral imports lazily, when "
        "the client opens; sum of medians)",
        ("c.cold_empty_cache.import", "c.cold_empty_cache.client"),
        "c.cold_import",
    ),
    ("(c) cold process: of which the resolve", "c.cold_empty_cache.resolve", "c.cold_resolve"),
    ("(c) cold process: of which the fetch", "c.cold_empty_cache.fetch", "c.cold_fetch"),
    ("server start (until health answers)", "server_start", "server_start"),
]

PAIRS = [("local", "direct"), ("server", "server")]


def load(run: Path) -> dict[tuple[str, str, str], dict]:
    rows: dict[tuple[str, str, str], dict] = {}
    for path in sorted(run.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                rows[(row["system"], row["mode"], row["op"])] = row
    return rows


def fmt(row: dict | None, key: str = "median_ms") -> str:
    if row is None or row.get("n", 1) == 0:
        return "–"
    value = row[key]
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def ratio(c: dict | None, m: dict | None) -> str:
    if not c or not m or not c.get("n") or not m.get("n"):
        return "–"
    r = c["median_ms"] / m["median_ms"]
    if r <= 1:
        return f"{r:.3f} ({1 / r:.1f}× faster)"
    return f"{r:.2f} ({r:.1f}× slower)"


def registry_table(rows: dict) -> str:
    out = [
        "| operation | Corral local | MLflow direct (SQLite) | Corral/MLflow | "
        "Corral server | MLflow server | Corral/MLflow |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for label, cop, mop in ROWS:
        cells = [label]
        for cmode, mmode in PAIRS:
            if isinstance(cop, tuple):
                parts = [rows.get(("corral", cmode, op)) for op in cop]
                c = (
                    None
                    if None in parts
                    else {
                        "n": min(p["n"] for p in parts),
                        "median_ms": sum(p["median_ms"] for p in parts),
                        "p95_ms": sum(p["p95_ms"] for p in parts),
                    }
                )
            else:
                c = rows.get(("corral", cmode, cop)) if cop else None
            m = rows.get(("mlflow", mmode, mop)) if mop else None
            cells += [_ms(c), _ms(m), ratio(c, m)]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("Cells: median ms / p95 ms (n). Ratio of medians.")
    return "\n".join(out)


def _ms(row: dict | None) -> str:
    if row is None or not row.get("n"):
        return "–"
    return f"{fmt(row)} / {fmt(row, 'p95_ms')} ({row['n']})"


def scale_table(rows: dict) -> str:
    ops = sorted(
        {
            op.split(".", 1)[1]
            for (s, mode, op) in rows
            if s == "corral" and mode == "scale" and op.startswith(("local.", "server."))
        },
        key=lambda o: list(_SCALE_LABELS).index(o) if o in _SCALE_LABELS else 99,
    )
    out = [
        "| query | matches | local p50 | local p95 | server p50 | server p95 | n |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for op in ops:
        lo = rows.get(("corral", "scale", f"local.{op}"))
        se = rows.get(("corral", "scale", f"server.{op}"))
        hits = (lo or se or {}).get("total_matches_last")
        n = (lo or se or {}).get("n")
        out.append(
            f"| {_SCALE_LABELS.get(op, op)} | {hits if hits is not None else '–'} | "
            f"{fmt(lo)} | {fmt(lo, 'p95_ms')} | {fmt(se)} | {fmt(se, 'p95_ms')} | {n} |"
        )
    fill = [
        rows.get(("corral", "scale", op))
        for op in ("fill.store_create_version", "fill.bulk_per_version")
    ]
    if fill[0]:
        out.append("")
        out.append(
            f"Fill: `SqlRegistryStore.create_version` median {fmt(fill[0])} ms, "
            f"p95 {fmt(fill[0], 'p95_ms')} ms per version (n={fill[0]['n']}); the rest "
            f"bulk-inserted ({fmt(fill[1]) if fill[1] else '–'} ms per version)."
        )
    return "\n".join(out)


_SCALE_LABELS = {
    "search_tag_1hit": "search versions by tag, unique value",
    "search_tag_1pct": "search versions by tag, 1% of versions match",
    "search_tag_10pct": "search versions by tag, 10% match",
    "search_tag_pair": "search versions by two tags (0.1% match)",
    "search_by_name": "search versions by model name (1,000 match)",
    "search_name_contains": "search versions by name substring (1,000 match)",
    "list_versions": "list versions of one model (page of 100)",
    "list_models_query": "list models by name query",
    "resolve_alias": "resolve an alias",
    "get_version_by_alias": "get the version an alias points at (with files)",
}


def targets(rows: dict) -> str:
    def r(cmode: str, mmode: str, cop: str, mop: str) -> float | None:
        c, m = rows.get(("corral", cmode, cop)), rows.get(("mlflow", mmode, mop))
        if not c or not m or not c.get("n") or not m.get("n"):
            return None
        return m["median_ms"] / c["median_ms"]

    lines = ["| target | measured | met? |", "|---|---|---|"]
    for cmode, mmode in PAIRS:
        x = r(cmode, mmode, "a.register_serialise", "a.register_pinned")
        y = r(cmode, mmode, "a.register_serialise", "a.register_defaults")
        if x is not None:
            verdict = "yes" if x >= 5 else "no"
            if y is not None:
                verdict += f" (pinned), {'yes' if y >= 5 else 'no'} (defaults)"
            lines.append(
                f"| registration ≥5× faster than MLflow ({cmode} vs {mmode}) | "
                f"{x:.1f}× vs pinned `log_model`; {y or 0:.0f}× vs defaults | {verdict} |"
            )
        for op in ("b.search_by_tag", "b.search_by_name", "b.search_name_contains"):
            x = r(cmode, mmode, op, op)
            if x is not None:
                lines.append(
                    f"| search ≥10× faster ({op[2:]}, {cmode} vs {mmode}) | {x:.1f}× | "
                    f"{'yes' if x >= 10 else 'no'} |"
                )
    for mode in ("local", "server"):
        for (system, m, op), row in rows.items():
            if system == "corral" and m == "scale" and op.startswith(f"{mode}.search"):
                name = _SCALE_LABELS.get(op.split(".", 1)[1], op)
                lines.append(
                    f"| p95 search < 20 ms at 100,000 versions ({mode}): {name} | "
                    f"{row['p95_ms']:.1f} ms | {'yes' if row['p95_ms'] < 20 else 'no'} |"
                )
    for mode in ("local", "server"):
        for op in ("c.cold_cached", "c.cold_empty_cache"):
            row = rows.get(("corral", mode, op))
            if row:
                lines.append(
                    f"| cold process < 1 s ({mode}, {op[2:]}) | median "
                    f"{row['median_ms']:.0f} ms | {'yes' if row['median_ms'] < 1000 else 'no'} |"
                )
    return "\n".join(lines)


def meta(rows: dict) -> str:
    out = []
    for (system, mode, op), row in sorted(rows.items()):
        if op == "_meta":
            extra = {k: v for k, v in row.items() if k not in ("system", "mode", "op", "platform")}
            out.append(f"- {system} {mode}: " + ", ".join(f"{k}={v}" for k, v in extra.items()))
    return "\n".join(out)


def ab_table(run: Path) -> str | None:
    """Scenario (a) alternated in rounds by registry_ab.sh: one ratio per round."""
    folder = run / "ab"
    if not folder.is_dir():
        return None
    out = [
        "| round | load (1 min) | Corral local ms | MLflow direct ms (pinned) | Corral/MLflow |",
        "|---|---:|---:|---:|---|",
    ]
    ratios = []
    rounds = sorted(folder.glob("mlflow-direct-*.jsonl"), key=lambda p: int(p.stem.split("-")[-1]))
    for mpath in rounds:
        round_no = mpath.stem.rsplit("-", 1)[1]
        cpath = folder / f"corral-local-{round_no}.jsonl"
        if not cpath.exists():
            continue
        m = {r["op"]: r for r in map(json.loads, mpath.read_text().splitlines())}
        c = {r["op"]: r for r in map(json.loads, cpath.read_text().splitlines())}
        cm, mm = c.get("a.register_serialise"), m.get("a.register_pinned")
        if not cm or not mm:
            continue
        ratios.append(cm["median_ms"] / mm["median_ms"])
        load = m.get("_meta", {}).get("loadavg", ["?"])[0]
        out.append(f"| {round_no} | {load} | {fmt(cm)} | {fmt(mm)} | {ratio(cm, mm)} |")
    if ratios:
        ratios.sort()
        med = statistics.median(ratios)
        out.append(
            f"| median of rounds | | | | {med:.3f} ({1 / med:.1f}× faster) |"
            if med <= 1
            else f"| median of rounds | | | | {med:.2f} ({med:.1f}× slower) |"
        )
    return "\n".join(out)


def main() -> None:
    if sys.argv[1:2] == ["serving"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import serving_report

        serving_report.main(sys.argv[2:])
        return
    run = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else max(
            (p for p in RESULTS.iterdir() if not p.name.startswith("serving-")),
            key=lambda p: p.name,
        )
    )
    rows = load(run)
    ab = ab_table(run)
    text = (
        "\n\n".join(
            [
                f"### Run `{run.name}`",
                meta(rows),
                "### Scenarios (a)–(c): Corral vs MLflow",
                registry_table(rows),
                *(["### Scenario (a) alternated (ABAB), local vs direct", ab] if ab else []),
                "### Corral at scale",
                scale_table(rows),
                "### Targets",
                targets(rows),
            ]
        )
        + "\n"
    )
    (run / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
