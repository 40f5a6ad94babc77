"""Registry benchmark of MLflow: run inside ``bench/.venvs/mlflow`` (see setup_peers.sh).

Modes:
  direct  the tracking/registry URI is ``sqlite:///<tmp>/mlflow.db`` with local artifacts
  server  ``mlflow server`` on 127.0.0.1 (SQLite backend, proxied local artifacts)

Scenarios (same 20-feature LogisticRegression as Corral's benchmark):
  a  register N versions of one model: ``log_model(registered_model_name=...)`` with explicit
     ``pip_requirements``, and a smaller batch with defaults (inferred requirements)
  b  M models x K versions (``create_model_version`` on one logged model), then search
     versions by tag, by exact name and by name substring
  c  set an alias, resolve it and download that version's files, warm (in process) and cold
     (a fresh process timed from its start)

Prints one JSON line per operation (median, p95, n in ms) and appends them to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    Recorder,
    bounded,
    free_port,
    make_model,
    scenario_b_names,
    scenario_b_tags,
    stop,
    time_cold,
    wait_http,
)

COLD_SCRIPT = r"""
import time
t0 = time.perf_counter()
import json, os, sys, tempfile
import mlflow
from mlflow import MlflowClient
t1 = time.perf_counter()
name = sys.argv[1]
mv = MlflowClient().get_model_version_by_alias(name, "champion")
t2 = time.perf_counter()
dst = tempfile.mkdtemp(dir=sys.argv[2])
uri = f"models:/{name}/{mv.version}"
path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=dst)
files = sorted(os.listdir(path))
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "resolve_s": t2 - t1, "fetch_s": t3 - t2,
                  "version": int(mv.version), "files": files}))
"""


def start_server(venv_bin: Path, tmp: Path, workers: int | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        str(venv_bin / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp}/mlflow-server.db",
        "--artifacts-destination",
        str(tmp / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    env = dict(os.environ)
    # mlflow server spawns uvicorn/gunicorn by bare name: the venv's bin must be on PATH.
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    log = (tmp / "mlflow-server.log").open("w")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["direct", "server"], required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--only-a", action="store_true", help="run scenario a only")
    parser.add_argument("--versions", type=int, default=200, help="scenario a, pinned requirements")
    parser.add_argument("--default-versions", type=int, default=10, help="scenario a, defaults")
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--per-model", type=int, default=20)
    parser.add_argument("--queries", type=int, default=50, help="repetitions of each search")
    parser.add_argument(
        "--timed-creates",
        type=int,
        default=10**9,
        help="scenario b: versions created through the client under test",
    )
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--cold", type=int, default=5)
    parser.add_argument(
        "--workers", type=int, default=1, help="mlflow server --workers (0: its default)"
    )
    parser.add_argument("--budget-s", type=float, default=900, help="time bound of each loop")
    args = parser.parse_args()

    import mlflow
    import sklearn
    from mlflow import MlflowClient

    tmp = Path(tempfile.mkdtemp(prefix=f"mlflow-bench-{args.mode}-"))
    venv_bin = Path(sys.executable).parent
    server = None
    workers = args.workers or None
    rec = Recorder(
        "mlflow",
        args.mode,
        args.out,
        mlflow=mlflow.__version__,
        sklearn=sklearn.__version__,
        workers=workers if args.mode == "server" else None,
    )
    try:
        if args.mode == "server":
            server, uri = start_server(venv_bin, tmp, workers)
            direct_uri = f"sqlite:///{tmp}/mlflow-server.db"
            waited = wait_http(f"{uri}/health", timeout_s=180, proc=server)
            rec.add("server_start", waited)
        else:
            uri = f"sqlite:///{tmp}/mlflow.db"
            (tmp / "artifacts").mkdir()
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        if args.mode == "direct":
            mlflow.create_experiment("bench", artifact_location=(tmp / "artifacts").as_uri())
        else:
            mlflow.create_experiment("bench")
        mlflow.set_experiment("bench")
        client = MlflowClient()
        model = make_model()
        pins = [f"scikit-learn=={sklearn.__version__}"]
        rec.emit_meta()

        # Warm up: imports, connection pool, first-table creation.
        mlflow.sklearn.log_model(
            model, name="warmup", registered_model_name="warmup", pip_requirements=pins
        )

        # (a) register N versions of one model.
        within = bounded(args.budget_s)
        for _ in range(args.versions):
            if not within():
                break
            with rec.time("a.register_pinned"):
                mlflow.sklearn.log_model(
                    model, name="model", registered_model_name="bench-a", pip_requirements=pins
                )
        within = bounded(args.budget_s)
        for _ in range(args.default_versions):
            if not within():
                break
            with rec.time("a.register_defaults"):
                mlflow.sklearn.log_model(
                    model, name="model", registered_model_name="bench-a-defaults"
                )
        rec.emit("a.register_pinned")
        rec.emit("a.register_defaults")
        if args.only_a:
            return

        # (b) M models x K versions, then searches.
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=pins)
        source = info.model_uri
        # Through a server, only the first --timed-creates versions go through it (timed);
        # the rest are inserted through the same SQLite store directly, to bound the run.
        filler = (
            client
            if args.mode == "direct"
            else MlflowClient(tracking_uri=direct_uri, registry_uri=direct_uri)
        )
        within = bounded(args.budget_s)
        created = 0
        for m in range(args.models):
            name, model_tags = scenario_b_names(m)
            with rec.time("b.create_model"):
                client.create_registered_model(name, tags=model_tags, description="benchmark model")
            for k in range(args.per_model):
                if not within():
                    break
                tags = scenario_b_tags(m, k)
                if created < args.timed_creates:
                    with rec.time("b.create_version"):
                        client.create_model_version(name, source, tags=tags, model_id=info.model_id)
                else:
                    filler.create_model_version(name, source, tags=tags, model_id=info.model_id)
                created += 1
        rec.note("b.create_version", total_versions=created)
        rec.emit("b.create_model")
        rec.emit("b.create_version")
        # Warm the search paths, then count.
        client.search_model_versions("tags.batch = 'batch-3'", max_results=100)
        for i in range(args.queries):
            with rec.time("b.search_by_tag"):
                hits = client.search_model_versions(
                    f"tags.batch = 'batch-{i % args.per_model}'", max_results=100
                )
            rec.note("b.search_by_tag", hits=len(hits))
        for i in range(args.queries):
            with rec.time("b.search_by_name"):
                hits = client.search_model_versions(
                    f"name = 'b-model-{i % args.models:03d}'", max_results=100
                )
            rec.note("b.search_by_name", hits=len(hits))
        for i in range(args.queries):
            with rec.time("b.search_name_contains"):
                hits = client.search_model_versions(
                    f"name LIKE '%model-{i % args.models:03d}%'", max_results=100
                )
            rec.note("b.search_name_contains", hits=len(hits))
        for op in ("b.search_by_tag", "b.search_by_name", "b.search_name_contains"):
            rec.emit(op)

        # (c) alias: move, resolve, fetch (warm), then cold processes.
        name = "bench-a"
        latest = max(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        for i in range(args.warm):
            with rec.time("c.set_alias"):
                client.set_registered_model_alias(name, "champion", str(latest - (i % 2)))
        client.set_registered_model_alias(name, "champion", str(latest))
        for _ in range(args.warm):
            with rec.time("c.resolve_warm"):
                mv = client.get_model_version_by_alias(name, "champion")
        for _ in range(args.warm):
            dst = tempfile.mkdtemp(dir=tmp)
            with rec.time("c.resolve_fetch_warm"):
                mv = client.get_model_version_by_alias(name, "champion")
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{name}/{mv.version}", dst_path=dst
                )
        for op in ("c.set_alias", "c.resolve_warm", "c.resolve_fetch_warm"):
            rec.emit(op)

        env = dict(os.environ, MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri)
        walls, inner = time_cold(
            [sys.executable, "-c", COLD_SCRIPT, name, str(tmp)], env, args.cold
        )
        for w in walls:
            rec.add("c.cold_total", w)
        for part in ("import_s", "resolve_s", "fetch_s"):
            for row in inner:
                rec.add(f"c.cold_{part[:-2]}", row[part])
        rec.note("c.cold_total", files=inner[-1]["files"] if inner else None, verified=False)
        for op in ("c.cold_total", "c.cold_import", "c.cold_resolve", "c.cold_fetch"):
            rec.emit(op)
        if server is not None:
            rec.emit("server_start")
    finally:
        if server is not None:
            stop(server)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"# done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
