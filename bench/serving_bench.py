"""Serving benchmark: Corral vs ``mlflow models serve`` vs BentoML, in one run, with wrk.

How to run (from the repository root; the peers live in bench/.venvs/, never in Corral's env):

    bash bench/setup_peers.sh && bash bench/run_serving.sh

What it measures: the same scikit-learn LogisticRegression on 20 numeric features (trained
once here, saved with skops, loaded by every server), served by

- Corral, ``python3 -m corral --home H server --workers N``, on its plain JSON path
  (``POST /api/v1/models/bench-lr/predict``) and its OIP V2 path (``/v2/models/bench-lr/infer``),
  with adaptive batching as configured by default, and again with batching disabled by a
  deployment config on the alias (``{"batching": {"enabled": false}}``) at the top concurrency;
- MLflow, ``mlflow models serve -m models:/bench-lr@champion --env-manager local -w N``
  (``POST /invocations`` with ``{"inputs": [[...]]}``, a tensor: the cheapest input MLflow has);
- BentoML, ``bentoml serve`` of ``serving_bentoml_service.py`` with ``workers=N`` (``POST
  /predict`` with ``{"inputs": [[...]]}``, access log off),

each at 1 and 2 workers, driven by ``wrk`` (1 thread, keep-alive) for ``SERVING_SECONDS``
(default 20) per cell at concurrency 1, 8, 64 with 1-row and 100-row bodies. Per cell:
requests/s, p50/p90/p99 latency, wrk's error counts (connect/read/write/timeout and non-2xx),
peak RSS of the server's whole process tree (psutil, every 0.2 s). Per server: time from
spawn to the first correct prediction, RSS after warm-up, peak RSS. Each server is started
once per worker count, its answers checked against the model's own predictions, warmed up
(``SERVING_WARMUP`` s, default 2, over its bodies), driven through its cells, then stopped
(process group), even on failure. Also: the in-process floor (``json.loads`` + ``predict`` +
``json.dumps``, with scikit-learn directly and with Corral's predictor), and cold starts timed
by ``hyperfine -N -w1 -r5`` (a fresh process imports the library, loads ``bench-lr@champion``
and predicts once; ``serving_cold.py``): Corral and MLflow.

Knobs (environment, or the options of the same name): SERVING_SECONDS, SERVING_WARMUP,
SERVING_SYSTEMS (corral,mlflow,bentoml), SERVING_WORKERS (1,2), SERVING_CONCURRENCY (1,8,64),
SERVING_ROWS (1,100), SERVING_COLD_RUNS (5; 0 skips), SERVING_WRK_THREADS (1),
SERVING_MLFLOW_FORMAT (inputs | dataframe_split).

What it writes, in ``--out`` (bench/results/serving-<timestamp>/): ``serving.jsonl`` (one JSON
line per cell, server, floor and cold start, plus ``meta``), ``cold.json`` (hyperfine's
export), ``logs/`` (each server's output, every wrk command and its output). Then
``python3 bench/report.py serving <dir>`` writes ``serving-report.md`` (the markdown for
docs/benchmarks.md; ``--insert docs/benchmarks.md`` puts it between
``<!-- serving:start -->`` / ``<!-- serving:end -->``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import N_FEATURES, bounded, machine, make_model, percentile
from serving_load import MIB, Endpoint, Server, ServerSpec, run_wrk

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
MODEL = "bench-lr"
CORRAL_JSON_PATH = f"/api/v1/models/{MODEL}/predict"
CORRAL_OIP_PATH = f"/v2/models/{MODEL}/infer"
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args() -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None, help="run folder (default: a new one)")
    p.add_argument("--seconds", type=int, default=int(env("SERVING_SECONDS", "20")))
    p.add_argument("--warmup", type=int, default=int(env("SERVING_WARMUP", "2")))
    p.add_argument("--systems", default=env("SERVING_SYSTEMS", "corral,mlflow,bentoml"))
    p.add_argument("--workers", type=_ints, default=_ints(env("SERVING_WORKERS", "1,2")))
    p.add_argument("--concurrency", type=_ints, default=_ints(env("SERVING_CONCURRENCY", "1,8,64")))
    p.add_argument("--rows", type=_ints, default=_ints(env("SERVING_ROWS", "1,100")))
    p.add_argument("--cold-runs", type=int, default=int(env("SERVING_COLD_RUNS", "5")))
    p.add_argument("--wrk-threads", type=int, default=int(env("SERVING_WRK_THREADS", "1")))
    p.add_argument(
        "--mlflow-format",
        choices=["inputs", "dataframe_split"],
        default=env("SERVING_MLFLOW_FORMAT", "inputs"),
    )
    p.add_argument("--floor-seconds", type=float, default=3.0)
    p.add_argument("--start-timeout", type=float, default=180.0)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args()
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - {"corral", "mlflow", "bentoml"}
    if unknown:
        p.error(f"unknown systems {sorted(unknown)}: choose among corral, mlflow, bentoml")
    if args.out is None:
        args.out = HERE / "results" / time.strftime("serving-%Y%m%d-%H%M%S")
    return args


class Results:
    """``serving.jsonl``: one JSON line per measurement, echoed on stdout."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, kind: str, **row: Any) -> dict[str, Any]:
        line = json.dumps({"kind": kind, **row})
        print(line, flush=True)
        with self.path.open("a") as fh:
            fh.write(line + "\n")
        return row


# -- preparation --------------------------------------------------------------------------


def write_bodies(work: Path, rows_list: list[int], mlflow_format: str) -> tuple[Any, dict]:
    """The request rows and one body file per (format, rows); the model's expected answers."""
    import numpy as np

    rng = np.random.default_rng(1)
    x = np.round(rng.normal(size=(max(rows_list), N_FEATURES)), 6)
    bodies: dict[str, dict[int, Path]] = {"json": {}, "oip": {}, "mlflow": {}}
    folder = work / "bodies"
    folder.mkdir()
    columns = [f"f{i}" for i in range(N_FEATURES)]
    for rows in rows_list:
        data = x[:rows].tolist()
        plain = {"inputs": data}
        oip = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [rows, N_FEATURES],
                    "datatype": "FP64",
                    "data": [v for row in data for v in row],
                }
            ]
        }
        mlflow = (
            plain
            if mlflow_format == "inputs"
            else {"dataframe_split": {"columns": columns, "data": data}}
        )
        for name, body in (("json", plain), ("oip", oip), ("mlflow", mlflow)):
            path = folder / f"{name}-{rows}.json"
            path.write_text(json.dumps(body))
            bodies[name][rows] = path
    return x, bodies


def prepare_corral(work: Path, model_dir: Path, x: Any) -> dict[str, Path]:
    """Two Corral homes with ``bench-lr`` v1 at ``champion``: default batching, batching off."""
    import corral

    example = [{f"f{i}": float(v) for i, v in enumerate(x[0])}]
    homes = {}
    for label, config in (("corral", None), ("corral-nobatch", "nobatch")):
        home = work / label
        with corral.Client(home=home) as client:
            version = client.register(MODEL, model_dir, flavor="sklearn", example=example)
            if config is not None:
                client.create_config(MODEL, config, {"batching": {"enabled": False}})
            client.set_alias(MODEL, "champion", version.number, config=config)
        homes[label] = home
    return homes


def prepare_mlflow(work: Path, model_file: Path, results: Results) -> dict[str, Any]:
    py = VENVS / "mlflow" / "bin" / "python"
    done = subprocess.run(
        [str(py), str(HERE / "serving_mlflow_prep.py"), str(model_file), str(work / "mlflow")],
        env=dict(os.environ, **TELEMETRY_OFF),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"MLflow preparation failed: {done.stderr[-2000:]}")
    info: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    results.write("prep", system="mlflow", **info)
    return info


def peer_version(venv: str, module: str) -> str:
    py = VENVS / venv / "bin" / "python"
    code = f"import {module}, sklearn; print({module}.__version__, sklearn.__version__)"
    done = subprocess.run(
        [str(py), "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    return done.stdout.strip() or f"unavailable ({done.stderr.strip()[-200:]})"


# -- in-process floor and cold starts -----------------------------------------------------


def floor(results: Results, impls: dict[str, Any], bodies: dict, seconds: float) -> None:
    """JSON decode + predict + JSON encode in a loop, per body size, no HTTP.

    ``impls`` maps a name to ``inputs -> outputs`` (a NumPy array or what converts to one).
    """
    import numpy as np

    for impl, fn in impls.items():
        for rows, path in bodies["json"].items():
            body = path.read_bytes()
            times: list[float] = []
            more = bounded(seconds)
            while more() and len(times) < 200_000:
                t0 = time.perf_counter()
                out = fn(json.loads(body)["inputs"])
                json.dumps({"predictions": np.asarray(out).tolist()})
                times.append(time.perf_counter() - t0)
            us = [t * 1e6 for t in times[len(times) // 10 :]]  # first tenth: warm-up
            results.write(
                "floor",
                impl=impl,
                rows=rows,
                n=len(us),
                median_us=round(statistics.median(us), 2),
                p99_us=round(percentile(us, 99), 2),
            )


def corral_floors(home: Path) -> tuple[dict[str, Any], Any]:
    """Corral's in-process paths: its predictor alone, and the SDK's local ``predict``."""
    import corral
    from corral.serving import load_predictor

    client = corral.Client(home=home)
    v = client.get_version(MODEL, "champion")
    folder = client.fetch(MODEL, v.number)
    predictor = load_predictor(folder, v.flavor, trusted=v.trusted, signature=v.signature)
    impls: dict[str, Any] = {"corral-predictor": predictor.predict}
    if hasattr(client, "predict"):
        impls["corral-sdk"] = lambda inputs: client.predict(MODEL, inputs).outputs
    return impls, client


def cold_starts(results: Results, targets: dict[str, tuple[Path, str]], runs: int) -> None:
    """hyperfine over fresh processes that import, load ``bench-lr@champion``, predict once."""
    script = HERE / "serving_cold.py"
    commands = []
    for system, (python, target) in targets.items():
        argv = [str(python), str(script), system, target]
        # One run outside hyperfine: checks it works, fills caches, records the breakdown.
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            results.write("cold", system=system, error=done.stderr[-1500:])
            continue
        breakdown = json.loads(done.stdout.strip().splitlines()[-1])
        breakdown["system"] = system
        results.write("cold_breakdown", **breakdown)
        commands += ["-n", system, " ".join(shlex.quote(a) for a in argv)]
    if not commands:
        return
    export = results.path.parent / "cold.json"
    argv = ["hyperfine", "-N", "-w1", f"-r{runs}", "--export-json", str(export), *commands]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60 * (runs + 2) * 2)
    (results.path.parent / "logs" / "hyperfine.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        results.write("cold", system="all", error=done.stderr[-1500:])
        return
    for entry in json.loads(export.read_text())["results"]:
        results.write(
            "cold",
            system=entry["command"],
            runs=len(entry["times"]),
            mean_s=round(entry["mean"], 4),
            stddev_s=round(entry["stddev"] or 0.0, 4),
            median_s=round(entry["median"], 4),
            min_s=round(entry["min"], 4),
            max_s=round(entry["max"], 4),
        )


# -- servers ------------------------------------------------------------------------------


def corral_has_workers_option() -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "corral", "server", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, COLUMNS="200"),
    )
    return "--workers" in done.stdout


def corral_spec(
    label: str, home: Path, workers: int, bodies: dict, has_workers: bool
) -> ServerSpec:
    spec = ServerSpec(
        system="corral",
        label=label,
        argv=[],
        env={k: v for k, v in os.environ.items() if k != "CORRAL_SERVER_URL"},
        ready_paths=["/v2/health/ready", "/api/v1/models"],
        endpoints=[Endpoint("json", CORRAL_JSON_PATH, bodies["json"], "predictions")],
        batching=label == "corral",
    )
    if label == "corral":
        spec.endpoints.append(Endpoint("oip", CORRAL_OIP_PATH, bodies["oip"], "oip"))
    spec.env["CORRAL_HOME"] = str(home)
    spec.argv = [sys.executable, "-m", "corral", "--home", str(home), "server"]
    spec.argv += ["--host", "127.0.0.1", "--port", str(spec.port)]
    if has_workers:
        spec.argv += ["--workers", str(workers)]
    return spec


def mlflow_spec(workers: int, bodies: dict, tracking_uri: str) -> ServerSpec:
    bin_dir = VENVS / "mlflow" / "bin"
    spec = ServerSpec(
        system="mlflow",
        label="mlflow",
        argv=[],
        # `--env-manager local` runs a bare `uvicorn`: the venv's bin/ must come first on PATH.
        env=dict(
            os.environ,
            **TELEMETRY_OFF,
            PATH=f"{bin_dir}:{os.environ.get('PATH', '')}",
            MLFLOW_TRACKING_URI=tracking_uri,
        ),
        ready_paths=["/ping"],
        endpoints=[Endpoint("invocations", "/invocations", bodies["mlflow"], "predictions")],
    )
    spec.argv = [str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion"]
    spec.argv += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(spec.port)]
    spec.argv += ["-w", str(workers)]
    return spec


def bentoml_spec(workers: int, bodies: dict, model_file: Path, work: Path) -> ServerSpec:
    bin_dir = VENVS / "bentoml" / "bin"
    spec = ServerSpec(
        system="bentoml",
        label="bentoml",
        argv=[],
        env=dict(
            os.environ,
            **TELEMETRY_OFF,
            PATH=f"{bin_dir}:{os.environ.get('PATH', '')}",
            BENTOML_HOME=str(work / "bentoml-home"),
            BENCH_MODEL_FILE=str(model_file),
            BENCH_WORKERS=str(workers),
        ),
        ready_paths=["/readyz"],
        endpoints=[Endpoint("predict", "/predict", bodies["json"], "list")],
        cwd=HERE,
    )
    spec.argv = [str(bin_dir / "bentoml"), "serve", "serving_bentoml_service:LogReg"]
    spec.argv += ["--host", "127.0.0.1", "--port", str(spec.port), "--working-dir", str(HERE)]
    return spec


def drive(
    results: Results,
    spec: ServerSpec,
    workers: int,
    cells: list[tuple[Endpoint, int, int]],
    expected: dict[int, list[int]],
    args: argparse.Namespace,
    logs: Path,
) -> bool:
    """Start one server, check it, warm it up, run its cells, stop it. True if all went well."""
    name = f"{spec.label}-w{workers}"
    common = {"system": spec.system, "label": spec.label, "workers": workers}
    if spec.batching is not None:
        common["batching"] = spec.batching
    wrk_log = logs / "wrk.log"
    print(f"== {name}: {' '.join(spec.argv)}", file=sys.stderr, flush=True)
    with Server(spec, logs / f"{name}.log") as server:
        try:
            ready_s = server.wait_ready(args.start_timeout)
            for endpoint in spec.endpoints:
                for rows in sorted(endpoint.bodies):
                    server.check(endpoint, rows, expected[rows], args.start_timeout)
            first_prediction_s = time.perf_counter() - server.started_at
            bodies = [(e, rows) for e in spec.endpoints for rows in sorted(e.bodies)]
            each = max(1, round(args.warmup / len(bodies)))
            for endpoint, rows in bodies:
                run_wrk(
                    server.url(endpoint),
                    endpoint.bodies[rows],
                    seconds=each,
                    connections=8,
                    threads=args.wrk_threads,
                    log=wrk_log,
                )
        except Exception as exc:
            results.write("server", **common, error=str(exc), argv=spec.argv)
            return False
        assert server.sampler is not None
        idle_rss, idle_procs = server.sampler.sample()
        ok = True
        for endpoint, rows, conc in cells:
            time.sleep(1)  # let the previous cell's connections close
            start, load = time.perf_counter(), os.getloadavg()[0]
            row: dict[str, Any] = {
                **common,
                "variant": endpoint.variant,
                "rows": rows,
                "concurrency": conc,
                "seconds": args.seconds,
                "loadavg_1m": round(load, 2),
            }
            try:
                row |= run_wrk(
                    server.url(endpoint),
                    endpoint.bodies[rows],
                    seconds=args.seconds,
                    connections=conc,
                    threads=args.wrk_threads,
                    log=wrk_log,
                )
            except Exception as exc:
                row["error"] = str(exc)
                ok = False
            peak, procs = server.sampler.peak(start, time.perf_counter())
            row |= {"peak_rss_mib": round(peak / MIB, 1), "processes": procs}
            results.write("cell", **row)
        peak, procs = server.sampler.peak()
        results.write(
            "server",
            **common,
            ready_s=round(ready_s, 3),
            first_prediction_s=round(first_prediction_s, 3),
            idle_rss_mib=round(idle_rss / MIB, 1),
            idle_processes=idle_procs,
            peak_rss_mib=round(peak / MIB, 1),
            peak_processes=procs,
            argv=spec.argv,
        )
        return ok


def main() -> int:
    args = parse_args()
    os.environ.update(TELEMETRY_OFF)
    # SIGTERM unwinds like Ctrl-C, so every server's ``with`` stops it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    results = Results(args.out / "serving.jsonl")
    work = Path(tempfile.mkdtemp(prefix="corral-serving-"))
    failures = 0
    try:
        import numpy as np
        import sklearn
        import skops.io as sio

        import corral

        has_workers = "corral" in args.systems and corral_has_workers_option()
        results.write(
            "meta",
            **machine(),
            seconds=args.seconds,
            warmup=args.warmup,
            workers=args.workers,
            concurrency=args.concurrency,
            rows=args.rows,
            wrk_threads=args.wrk_threads,
            mlflow_format=args.mlflow_format,
            corral=corral.__version__,
            sklearn=sklearn.__version__,
            numpy=np.__version__,
            corral_workers_option=has_workers,
            mlflow_sklearn=peer_version("mlflow", "mlflow") if "mlflow" in args.systems else "",
            bentoml_sklearn=peer_version("bentoml", "bentoml") if "bentoml" in args.systems else "",
            wrk=wrk_version(),
            git=subprocess.run(
                ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
            ).stdout.strip(),
        )
        model = make_model()
        model_dir = work / "model"
        model_dir.mkdir()
        model_file = model_dir / "model.skops"
        sio.dump(model, model_file)
        x, bodies = write_bodies(work, args.rows, args.mlflow_format)
        expected = {rows: [int(v) for v in model.predict(x[:rows])] for rows in args.rows}

        homes: dict[str, Path] = {}
        impls: dict[str, Any] = {"sklearn": lambda inputs: model.predict(np.asarray(inputs))}
        clients = []
        cold_targets: dict[str, tuple[Path, str]] = {}
        if "corral" in args.systems:
            homes = prepare_corral(work, model_dir, x)
            more, client = corral_floors(homes["corral"])
            impls |= more
            clients.append(client)
            cold_targets["corral"] = (Path(sys.executable), str(homes["corral"]))
        mlflow_info: dict[str, Any] = {}
        if "mlflow" in args.systems:
            mlflow_info = prepare_mlflow(work, model_file, results)
            cold_targets["mlflow"] = (
                VENVS / "mlflow" / "bin" / "python",
                mlflow_info["tracking_uri"],
            )

        floor(results, impls, bodies, args.floor_seconds)
        for client in clients:
            client.close()
        if args.cold_runs > 0 and cold_targets:
            cold_starts(results, cold_targets, args.cold_runs)

        top = max(args.concurrency)
        for workers in args.workers:
            plan: list[tuple[ServerSpec, list[tuple[Endpoint, int, int]]]] = []
            if "corral" in args.systems:
                if workers > 1 and not has_workers:
                    results.write(
                        "server",
                        system="corral",
                        label="corral",
                        workers=workers,
                        error="`corral server` has no --workers option",
                    )
                    failures += 1
                else:
                    for label in ("corral", "corral-nobatch"):
                        spec = corral_spec(label, homes[label], workers, bodies, has_workers)
                        concs = args.concurrency if label == "corral" else [top]
                        plan.append((spec, cells_of(spec, args.rows, concs)))
            if "mlflow" in args.systems:
                spec = mlflow_spec(workers, bodies, mlflow_info["tracking_uri"])
                plan.append((spec, cells_of(spec, args.rows, args.concurrency)))
            if "bentoml" in args.systems:
                spec = bentoml_spec(workers, bodies, model_file, work)
                plan.append((spec, cells_of(spec, args.rows, args.concurrency)))
            for spec, cells in plan:
                if not drive(results, spec, workers, cells, expected, args, logs):
                    failures += 1
        results.write("meta_end", loadavg=[round(v, 2) for v in os.getloadavg()])
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"results: {args.out}", file=sys.stderr)
    return 1 if failures else 0


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout
    return out.split(" Copyright")[0].strip()


def cells_of(
    spec: ServerSpec, rows_list: list[int], concs: list[int]
) -> list[tuple[Endpoint, int, int]]:
    return [(e, rows, c) for e in spec.endpoints for rows in rows_list for c in concs]


if __name__ == "__main__":
    sys.exit(main())
