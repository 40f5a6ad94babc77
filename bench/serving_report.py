"""Markdown for a serving benchmark run (``serving.jsonl`` written by ``serving_bench.py``).

Usage: python3 bench/report.py serving <bench/results/serving-...> [--insert docs/benchmarks.md]
Writes ``serving-report.md`` into the run folder and prints it; ``--insert FILE`` replaces what
lies between ``<!-- serving:start -->`` and ``<!-- serving:end -->`` in FILE (or appends a
"Serving" section holding the markers when FILE has none).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

START, END = "<!-- serving:start -->", "<!-- serving:end -->"
# (label, variant) -> column title; the order of the columns.
COLUMNS = [
    (("corral", "json"), "Corral JSON"),
    (("corral", "oip"), "Corral OIP V2"),
    (("mlflow", "invocations"), "MLflow"),
    (("bentoml", "predict"), "BentoML"),
]
PEERS = ("mlflow", "bentoml")
CORRAL_PATHS = (("corral", "json"), ("corral", "oip"))
Row = dict[str, Any]


def load(run: Path) -> list[Row]:
    path = run / "serving.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.startswith("{")]


def _rps(row: Row | None) -> str:
    if row is None:
        return "–"
    if "error" in row:
        return "failed"
    return f"{row['rps']:,.0f}"


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:,.1f}"


def _cell(row: Row | None) -> str:
    if row is None or "error" in row:
        return _rps(row)
    flag = " ⚠" if row.get("errors_total") else ""
    return f"{_rps(row)} · {_ms(row['p50_ms'])} · {_ms(row['p99_ms'])}{flag}"


class Run:
    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.meta = next((r for r in rows if r["kind"] == "meta"), {})
        self.end = next((r for r in rows if r["kind"] == "meta_end"), {})
        self.cells = [r for r in rows if r["kind"] == "cell"]
        self.servers = [r for r in rows if r["kind"] == "server"]

    def cell(self, label: str, variant: str, workers: int, rows: int, conc: int) -> Row | None:
        for r in self.cells:
            if (r["label"], r["variant"], r["workers"], r["rows"], r["concurrency"]) == (
                label,
                variant,
                workers,
                rows,
                conc,
            ):
                return r
        return None

    def values(self, key: str) -> list[int]:
        return sorted({r[key] for r in self.cells})

    def best_peer(self, workers: int, rows: int, conc: int) -> Row | None:
        found = [
            r
            for label, variant in ((p, v) for (p, v), _ in COLUMNS if p in PEERS)
            if (r := self.cell(label, variant, workers, rows, conc)) and "error" not in r
        ]
        return max(found, key=lambda r: r["rps"], default=None)


def header(run: Run, name: str) -> str:
    m = run.meta
    lines = [
        f"Run `{name}`: {m.get('nproc')} CPUs, load average (1/5/15 min) "
        f"{m.get('loadavg')} at the start, {run.end.get('loadavg', '?')} at the end; "
        f"{m.get('platform', '')}, Python {m.get('python', '')}.",
        f"Corral {m.get('corral')} (commit {m.get('git', '?')}; scikit-learn {m.get('sklearn')}, "
        f"NumPy {m.get('numpy')}); MLflow + scikit-learn {m.get('mlflow_sklearn') or '–'}; "
        f"BentoML + scikit-learn {m.get('bentoml_sklearn') or '–'}; {m.get('wrk', 'wrk')}.",
        f"Each cell: `wrk -t{m.get('wrk_threads')} -c<concurrency> -d{m.get('seconds')}s "
        f"--timeout=5s --latency` (keep-alive), after a {m.get('warmup')} s warm-up per server. "
        f"MLflow body: `{m.get('mlflow_format')}`.",
    ]
    return "\n".join(lines)


def throughput(run: Run) -> str:
    out = []
    for workers in run.values("workers"):
        out += [
            f"#### {workers} worker{'s' if workers > 1 else ''}",
            "",
            "| rows | concurrency | "
            + " | ".join(t for _, t in COLUMNS)
            + " | Corral / best peer |",
            "|---:|---:|" + "---:|" * len(COLUMNS) + "---|",
        ]
        for rows in run.values("rows"):
            for conc in run.values("concurrency"):
                cells = [run.cell(lb, v, workers, rows, conc) for (lb, v), _ in COLUMNS]
                if all(c is None for c in cells):
                    continue
                peer = run.best_peer(workers, rows, conc)
                ratios = []
                for (label, variant), _ in COLUMNS[:2]:
                    mine = run.cell(label, variant, workers, rows, conc)
                    if mine and peer and "error" not in mine and peer["rps"]:
                        short = "JSON" if variant == "json" else "OIP"
                        ratios.append(f"{short} {mine['rps'] / peer['rps']:.1f}×")
                out.append(
                    f"| {rows} | {conc} | "
                    + " | ".join(_cell(c) for c in cells)
                    + f" | {', '.join(ratios) or '–'} |"
                )
        out.append("")
    out.append(
        "Cells: requests/s · p50 ms · p99 ms (⚠: wrk counted errors, see below). "
        "Ratio: Corral's requests/s over the better peer's in the same row."
    )
    return "\n".join(out)


def batching(run: Run) -> str | None:
    nobatch = [r for r in run.cells if r["label"] == "corral-nobatch"]
    if not nobatch:
        return None
    out = [
        "| workers | rows | concurrency | batching on: req/s · p50 · p99 | batching off | "
        "on / off |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for off in sorted(nobatch, key=lambda r: (r["workers"], r["rows"])):
        on = run.cell("corral", off["variant"], off["workers"], off["rows"], off["concurrency"])
        ratio = (
            f"{on['rps'] / off['rps']:.2f}×"
            if on and "error" not in on and "error" not in off and off["rps"]
            else "–"
        )
        out.append(
            f"| {off['workers']} | {off['rows']} | {off['concurrency']} | {_cell(on)} | "
            f"{_cell(off)} | {ratio} |"
        )
    return "\n".join(out)


def servers(run: Run) -> str:
    out = [
        "| server | workers | ready (s) | first correct prediction (s) | RSS after warm-up "
        "(MiB) | peak RSS (MiB) | processes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in run.servers:
        if "error" in s:
            out.append(f"| {s['label']} | {s['workers']} | failed: {s['error'][:200]} | | | | |")
            continue
        out.append(
            f"| {s['label']} | {s['workers']} | {s['ready_s']:.2f} | "
            f"{s['first_prediction_s']:.2f} | {s['idle_rss_mib']:,.0f} | "
            f"{s['peak_rss_mib']:,.0f} | {s['peak_processes']} |"
        )
    out.append("")
    out.append(
        "RSS summed over the server's process tree (launcher, workers, helpers), sampled every "
        "0.2 s; pages shared between forked workers count once per process."
    )
    return "\n".join(out)


def floor(run: Run) -> str | None:
    rows = [r for r in run.rows if r["kind"] == "floor"]
    if not rows:
        return None
    out = [
        "| rows | scikit-learn | Corral's predictor | Corral SDK, local `Client.predict` |",
        "|---:|---:|---:|---:|",
    ]
    for n in sorted({r["rows"] for r in rows}):
        by = {r["impl"]: r for r in rows if r["rows"] == n}
        cells = [
            f"{by[i]['median_us']:,.0f} · {by[i]['p99_us']:,.0f}" if i in by else "–"
            for i in ("sklearn", "corral-predictor", "corral-sdk")
        ]
        out.append(f"| {n} | {' | '.join(cells)} |")
    out.append("")
    out.append(
        "Median µs · p99 µs of `json.loads(body)` + predict + `json.dumps`, in one process, no "
        "HTTP. scikit-learn: `model.predict(np.asarray(inputs))`; Corral's predictor: "
        "`Predictor.predict(inputs)` (input layout checked against the signature); SDK: "
        "`Client(home=...).predict(...)` (alias resolved, gateway, no batching)."
    )
    return "\n".join(out)


def cold(run: Run) -> str | None:
    rows = [r for r in run.rows if r["kind"] == "cold"]
    if not rows:
        return None
    parts = {r["system"]: r for r in run.rows if r["kind"] == "cold_breakdown"}
    out = [
        "| system | median (s) | mean ± sd (s) | min – max (s) | runs | one run: import · load "
        "· predict (s), how |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['system']} | failed: {r['error'][:200]} | | | | |")
            continue
        b = parts.get(r["system"], {})
        split = "–"
        if b:
            predict = f"{b['predict_s']:.3f}" if b["predict_s"] else "(in load)"
            split = f"{b['import_s']:.2f} · {b['load_s']:.2f} · {predict}, {b.get('route', '')}"
        out.append(
            f"| {r['system']} | {r['median_s']:.2f} | {r['mean_s']:.2f} ± {r['stddev_s']:.2f} | "
            f"{r['min_s']:.2f} – {r['max_s']:.2f} | {r['runs']} | {split} |"
        )
    out.append("")
    out.append(
        f"`hyperfine -N -w1 -r{rows[0].get('runs', '?')}`: a fresh process imports the library, "
        "loads `bench-lr@champion` from its registry (SQLite + local files) and predicts one "
        "row (`bench/serving_cold.py`)."
    )
    return "\n".join(out)


def errors(run: Run) -> str:
    bad = [r for r in run.cells if r.get("errors_total") or "error" in r]
    bad_servers = [s for s in run.servers if "error" in s]
    if not bad and not bad_servers:
        return (
            f"None: in all {len(run.cells)} cells wrk counted 0 connect, read, write and timeout "
            "errors and 0 non-2xx answers."
        )
    out = ["**Flagged:**", ""]
    for s in bad_servers:
        out.append(f"- server {s['label']} ({s['workers']} workers): {s['error'][:300]}")
    for r in bad:
        what = r.get("error") or ", ".join(f"{k} {v}" for k, v in r["errors"].items() if v)
        out.append(
            f"- {r['label']} {r['variant']}, {r['workers']} workers, {r['rows']} rows, "
            f"c={r['concurrency']}: {what} (of {r.get('requests', '?')} requests)"
        )
    return "\n".join(out)


def targets(run: Run) -> str:
    out = ["| target | measured | met? |", "|---|---|---|"]

    def add(target: str, measured: str, met: bool | None) -> None:
        out.append(f"| {target} | {measured} | {'–' if met is None else 'yes' if met else 'no'} |")

    colds = {r["system"]: r for r in run.rows if r["kind"] == "cold" and "error" not in r}
    if "corral" in colds:
        c = colds["corral"]["median_s"]
        ref = f" (MLflow {colds['mlflow']['median_s']:.2f} s)" if "mlflow" in colds else ""
        add("cold import + load by alias + predict < 1.5 s", f"{c:.2f} s median{ref}", c < 1.5)
    top = max(run.values("concurrency"), default=0)
    for workers in run.values("workers"):
        for rows in run.values("rows"):
            peer = run.best_peer(workers, rows, top)
            for (label, variant), title in COLUMNS[:2]:
                mine = run.cell(label, variant, workers, rows, top)
                if mine and peer and "error" not in mine:
                    x = mine["rps"] / peer["rps"]
                    add(
                        f"c={top}, {rows} row{'s' if rows > 1 else ''}, {workers} w: ≥ 3× best "
                        f"peer req/s ({title})",
                        f"{x:.1f}× ({mine['rps']:,.0f} vs {peer['label']} {peer['rps']:,.0f})",
                        x >= 3,
                    )
        for (label, variant), title in COLUMNS[:2]:
            mine = run.cell(label, variant, workers, 1, 1)
            if mine and "error" not in mine:
                add(
                    f"c=1, 1 row, {workers} w: p50 < 1 ms ({title})",
                    f"{mine['p50_ms']:.3f} ms",
                    mine["p50_ms"] < 1,
                )
        for off in (r for r in run.cells if r["label"] == "corral-nobatch"):
            if off["workers"] != workers or "error" in off:
                continue
            on = run.cell("corral", off["variant"], workers, off["rows"], off["concurrency"])
            if on and "error" not in on:
                x = on["rps"] / off["rps"]
                add(
                    f"adaptive batching ≥ 2× (c={off['concurrency']}, {off['rows']} rows, "
                    f"{workers} w)",
                    f"{x:.2f}× ({on['rps']:,.0f} vs {off['rps']:,.0f} req/s)",
                    x >= 2,
                )
    bad = [r for r in run.cells if r.get("errors_total") or "error" in r]
    add(
        "no errors in any run",
        f"{len(bad)} of {len(run.cells)} cells with errors",
        not bad and not any("error" in s for s in run.servers),
    )
    return "\n".join(out)


INTRO = """\
The same scikit-learn `LogisticRegression` on 20 numeric features (trained once, saved with
skops, loaded by every server), served on 127.0.0.1 by Corral, by `mlflow models serve` and by
BentoML, each peer the latest release in its own virtualenv, in one run of
`bash bench/setup_peers.sh && bash bench/run_serving.sh` (script: `bench/serving_bench.py`):

- Corral: `python3 -m corral --home H server --workers N`; plain JSON
  `POST /api/v1/models/bench-lr/predict` with `{"inputs": [[…20 floats…], …]}` and OIP V2
  `POST /v2/models/bench-lr/infer` (one FP64 tensor `[rows, 20]`); the alias `champion` served
  with the default adaptive batching, and with `{"batching": {"enabled": false}}` as its
  deployment config for the batching comparison.
- MLflow: `mlflow models serve -m models:/bench-lr@champion --env-manager local -w N`
  (`log_model` with explicit `pip_requirements` and a tensor signature), `POST /invocations`
  with the same `{"inputs": [[…]]}` body (a tensor: no DataFrame is built).
- BentoML: `bentoml serve` of `bench/serving_bentoml_service.py`, `@bentoml.service(workers=N)`,
  `@bentoml.api predict(inputs: np.ndarray)`, `POST /predict` with the same body; its access log
  turned off (`logging={"access": {"enabled": False}}`; Corral and MLflow log no requests either).

Every server's answers are checked against the model's own predictions before it is measured.
Each server is started once per worker count, warmed up, then driven through its cells; wrk
uses keep-alive connections, so the 2-worker cells at concurrency 1 show any keep-alive penalty
of a multi-worker server.
"""


def render(run_dir: Path) -> str:
    run = Run(load(run_dir))
    intro = INTRO.strip()
    if run.meta.get("mlflow_format") == "dataframe_split":
        intro = intro.replace(
            'with the same `{"inputs": [[…]]}` body (a tensor: no DataFrame is built)',
            'with `{"dataframe_split": {"columns": […], "data": [[…]]}}`',
        )
    sections = [
        intro,
        header(run, run_dir.name),
        "### Requests/s and latency",
        throughput(run),
    ]
    for title, body in (
        ("### Adaptive batching on and off (Corral, plain JSON)", batching(run)),
        ("### Servers: start-up and memory", servers(run)),
        ("### In-process floor", floor(run)),
        ("### Cold start", cold(run)),
        ("### Errors", errors(run)),
        ("### Targets", targets(run)),
    ):
        if body:
            sections += [title, body]
    return "\n\n".join(sections) + "\n"


def insert(doc: Path, text: str) -> None:
    current = doc.read_text()
    block = f"{START}\n{text}{END}"
    heading = "\n## Serving\n"
    if START in current and END in current:
        head, rest = current.split(START, 1)
        tail = rest.split(END, 1)[1]
        doc.write_text(head + block + tail)
    elif heading in current:
        # The section exists (maybe as a "(to come)" placeholder): the block goes under it.
        head, tail = current.split(heading, 1)
        tail = tail.lstrip("\n").removeprefix("(to come)").lstrip("\n")
        doc.write_text(f"{head}{heading}\n{block}\n\n{tail}")
    else:
        doc.write_text(current.rstrip("\n") + f"\n{heading}\n{block}\n")


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: report.py serving <run folder> [--insert FILE]")
    run_dir = Path(argv[0])
    text = render(run_dir)
    (run_dir / "serving-report.md").write_text(text)
    print(text)
    if "--insert" in argv:
        insert(Path(argv[argv.index("--insert") + 1]), text)


if __name__ == "__main__":
    main(sys.argv[1:])
