"""Registry benchmark of Corral: the same scenarios as ``registry_mlflow.py``.

Modes:
  local   ``corral.Client(home=<tmp>)``: the services straight on SQLite + a local folder
  server  ``corral server`` on 127.0.0.1 (``CORRAL_HOME=<tmp>``), ``corral.Client(url)``

Scenarios (same 20-feature LogisticRegression as the MLflow benchmark):
  a  register N versions of one model: serialise with skops + ``register`` (what MLflow's
     ``log_model`` does), and ``register`` alone of an already serialised file
  b  M models x K versions, then ``search_versions`` by tag, by exact model and by name
     substring
  c  move an alias, ``resolve`` it and ``fetch`` the verified files, warm (in process) and
     cold (a fresh process timed from its start; with the fetch cache filled, and empty)

Prints one JSON line per operation (median, p95, n in ms) and appends them to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    Recorder,
    bounded,
    make_model,
    scenario_b_names,
    scenario_b_tags,
    start_corral_server,
    stop,
    time_cold,
    wait_http,
)

COLD_SCRIPT = r"""
import time
t0 = time.perf_counter()
import json, sys
import corral
t1 = time.perf_counter()
target, name, cache = sys.argv[1], sys.argv[2], sys.argv[3]
if target.startswith("http"):
    c = corral.Client(target, cache_dir=cache)
else:
    c = corral.Client(home=target, cache_dir=cache)
t2 = time.perf_counter()
r = c.resolve(name, "champion")
t3 = time.perf_counter()
path = c.fetch(name, "champion")
files = sorted(p.name for p in path.iterdir())
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "client_s": t2 - t1, "resolve_s": t3 - t2,
                  "fetch_s": t4 - t3, "version": r.version, "files": files}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["local", "server"], required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--only-a", action="store_true", help="run scenario a only")
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--per-model", type=int, default=20)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--cold", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=600, help="time bound of each loop")
    args = parser.parse_args()

    import skops
    import skops.io as sio

    import corral

    tmp = Path(tempfile.mkdtemp(prefix=f"corral-bench-{args.mode}-"))
    home = tmp / "home"
    home.mkdir()
    server = None
    rec = Recorder(
        "corral", args.mode, args.out, corral=corral.__version__, skops=skops.__version__
    )
    try:
        if args.mode == "server":
            server, url = start_corral_server(home)
            rec.add("server_start", wait_http(f"{url}/api/v1/health", timeout_s=120, proc=server))
            client = corral.Client(url, cache_dir=tmp / "cache")
            target = url
        else:
            client = corral.Client(home=home, cache_dir=tmp / "cache")
            target = str(home)
        rec.emit_meta()
        model = make_model()
        fixed = tmp / "fixed"
        fixed.mkdir()
        sio.dump(model, fixed / "model.skops")

        # Warm up: imports, connection, first writes.
        client.create_model("warmup")
        client.register("warmup", fixed, flavor="sklearn")

        # (a) register N versions of one model.
        client.create_model("bench-a", description="benchmark model")
        within = bounded(args.budget_s)
        for i in range(args.versions):
            if not within():
                break
            work = tmp / "a" / str(i)
            with rec.time("a.register_serialise"):
                work.mkdir(parents=True)
                sio.dump(model, work / "model.skops")
                client.register(
                    "bench-a", work, flavor="sklearn", metrics={"accuracy": 0.9}, tags={"i": str(i)}
                )
        within = bounded(args.budget_s)
        for i in range(args.versions):
            if not within():
                break
            with rec.time("a.register_file"):
                client.register(
                    "bench-a",
                    fixed,
                    flavor="sklearn",
                    metrics={"accuracy": 0.9},
                    tags={"i": str(i)},
                )
        rec.emit("a.register_serialise")
        rec.emit("a.register_file")
        if args.only_a:
            return

        # (b) M models x K versions, then searches.
        within = bounded(args.budget_s)
        for m in range(args.models):
            name, model_tags = scenario_b_names(m)
            with rec.time("b.create_model"):
                client.create_model(name, tags=model_tags, description="benchmark model")
            for k in range(args.per_model):
                if not within():
                    break
                tags = scenario_b_tags(m, k)
                with rec.time("b.create_version"):
                    client.register(name, fixed, flavor="sklearn", tags=tags, create_model=False)
        rec.emit("b.create_model")
        rec.emit("b.create_version")
        client.search_versions(tags={"batch": "batch-3"}, limit=100)
        for i in range(args.queries):
            with rec.time("b.search_by_tag"):
                page = client.search_versions(
                    tags={"batch": f"batch-{i % args.per_model}"}, limit=100
                )
            rec.note("b.search_by_tag", hits=len(page.items))
        for i in range(args.queries):
            with rec.time("b.search_by_name"):
                page = client.search_versions(model=f"b-model-{i % args.models:03d}", limit=100)
            rec.note("b.search_by_name", hits=len(page.items))
        for i in range(args.queries):
            with rec.time("b.search_name_contains"):
                page = client.search_versions(
                    name_contains=f"model-{i % args.models:03d}", limit=100
                )
            rec.note("b.search_name_contains", hits=len(page.items))
        for op in ("b.search_by_tag", "b.search_by_name", "b.search_name_contains"):
            rec.emit(op)

        # (c) alias: move, resolve, fetch (warm), then cold processes.
        name = "bench-a"
        latest = client.get_model(name).latest_version
        for i in range(args.warm):
            with rec.time("c.set_alias"):
                client.set_alias(name, "champion", latest - (i % 2))
        client.set_alias(name, "champion", latest)
        for _ in range(args.warm):
            with rec.time("c.resolve_warm"):
                client.resolve(name, "champion")
        for _ in range(args.warm):
            with rec.time("c.resolve_fetch_warm"):
                client.resolve(name, "champion")
                client.fetch(name, "champion")
        for i in range(args.warm):
            with rec.time("c.resolve_fetch_warm_nocache"):
                client.resolve(name, "champion")
                _fetch_fresh(client, name, tmp / "nocache" / str(i))
        for op in (
            "c.set_alias",
            "c.resolve_warm",
            "c.resolve_fetch_warm",
            "c.resolve_fetch_warm_nocache",
        ):
            rec.emit(op)

        env = dict(os.environ)
        env.pop("CORRAL_SERVER_URL", None)
        cache = tmp / "cold-cache"
        walls, inner = time_cold(
            [sys.executable, "-c", COLD_SCRIPT, target, name, str(cache)], env, args.cold
        )
        _record_cold(rec, "c.cold_cached", walls, inner)
        walls, inner = [], []
        for i in range(args.cold + 1):
            w, r = time_cold(
                [sys.executable, "-c", COLD_SCRIPT, target, name, str(tmp / "cold-empty" / str(i))],
                env,
                1,
                warmup=0,
            )
            if i:  # the first run is a warm-up, as in time_cold
                walls += w
                inner += r
        _record_cold(rec, "c.cold_empty_cache", walls, inner)
        if server is not None:
            rec.emit("server_start")
    finally:
        if server is not None:
            stop(server)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _fetch_fresh(client: object, name: str, cache: Path) -> None:
    saved = client.cache_dir  # type: ignore[attr-defined]
    client.cache_dir = cache  # type: ignore[attr-defined]
    try:
        client.fetch(name, "champion")  # type: ignore[attr-defined]
    finally:
        client.cache_dir = saved  # type: ignore[attr-defined]


def _record_cold(rec: Recorder, op: str, walls: list[float], inner: list[dict]) -> None:
    for w in walls:
        rec.add(op, w)
    for part in ("import_s", "client_s", "resolve_s", "fetch_s"):
        for row in inner:
            rec.add(f"{op}.{part[:-2]}", row[part])
    rec.note(op, files=inner[-1]["files"] if inner else None, verified=True)
    for sub in ("", ".import", ".client", ".resolve", ".fetch"):
        rec.emit(op + sub)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"# done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
