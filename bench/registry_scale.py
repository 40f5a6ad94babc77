"""Corral alone at scale: search and alias resolution over 100,000 versions on SQLite.

Fills one Corral home with M models x K versions (tags on every version) through the
registry store's ``create_version`` (the same call the service makes, minus re-uploading
identical bytes: every version points at one real manifest, so ``fetch`` works), then
times each query ``--queries`` times in local mode and through ``corral server``.

Prints one JSON line per operation (median, p95, n in ms) and appends them to ``--out``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Recorder, bounded, make_model, start_corral_server, stop, wait_http


def fill(home: Path, models: int, per_model: int, api_models: int, rec: Recorder) -> None:
    import skops.io as sio
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

    import corral
    from corral.config import Settings
    from corral.registry.entities import ModelVersion, VersionStatus
    from corral.wiring import open_corral

    seed = home.parent / "seed"
    seed.mkdir()
    sio.dump(make_model(), seed / "model.skops")
    with corral.Client(home=home) as client:
        client.create_model("seed")
        template = client.get_version(
            "seed", client.register("seed", seed, flavor="sklearn").number
        )
    wired = open_corral(Settings(home=home))
    store, service = wired.registry.store, wired.registry
    total = models * per_model

    def draft(name: str, m: int, k: int) -> ModelVersion:
        return ModelVersion(
            model=name,
            number=0,
            status=VersionStatus.READY,
            manifest_digest=template.manifest_digest,
            flavor="sklearn",
            metrics={"accuracy": 0.5 + (k % 50) / 100},
            tags={"team": f"team-{m % 10}", "batch": f"batch-{k % 100}", "seed": f"{m}-{k}"},
            created_by="bench",
            created_at=datetime.now(UTC),
            files=list(template.files),
            size=template.size,
        )

    # The first --api-models models go through SqlRegistryStore.create_version (one
    # transaction per version, as in production); the rest are bulk-inserted into the same
    # tables, one transaction per model, to keep the fill within minutes.
    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("filling", total=total)
        for m in range(models):
            name = f"scale-{m:04d}"
            service.create_model(name, tags={"team": f"team-{m % 10}"}, description="scale bench")
            if m < api_models:
                for k in range(per_model):
                    with rec.time("fill.store_create_version"):
                        store.create_version(draft(name, m, k))
                    bar.advance(task)
            else:
                start = time.perf_counter()
                _bulk_insert(wired.engine, name, [draft(name, m, k) for k in range(per_model)])
                rec.add("fill.bulk_per_version", (time.perf_counter() - start) / per_model)
                bar.advance(task, per_model)
            service.set_alias(name, "champion", per_model // 2, actor="bench")
    for op in ("fill.store_create_version", "fill.bulk_per_version"):
        if op in rec.samples:
            rec.emit(op)
    wired.close()


def _bulk_insert(engine, model: str, drafts: list) -> None:
    """Insert a model's versions and their tag rows in one transaction (bench fill only)."""
    from sqlalchemy import func, insert, select, update

    from corral.store.sql._convert import files_to_json
    from corral.store.sql.tables import ModelRow, VersionRow, VersionTagRow

    with engine.begin() as conn:
        model_id = conn.scalar(select(ModelRow.id).where(ModelRow.name == model))
        first_id = (conn.scalar(select(func.max(VersionRow.id))) or 0) + 1
        versions, tags = [], []
        for i, d in enumerate(drafts):
            vid = first_id + i
            versions.append(
                {
                    "id": vid,
                    "model_id": model_id,
                    "number": i + 1,
                    "status": d.status.value,
                    "manifest_digest": d.manifest_digest,
                    "flavor": d.flavor,
                    "description": "",
                    "metrics": dict(d.metrics),
                    "params": {},
                    "tags": dict(d.tags),
                    "signature": None,
                    "source_uri": "",
                    "parent_version": None,
                    "created_by": d.created_by,
                    "created_at": d.created_at,
                    "files": files_to_json(d.files),
                    "size": d.size,
                }
            )
            tags += [{"version_id": vid, "key": k, "value": v} for k, v in d.tags.items()]
        conn.execute(insert(VersionRow), versions)
        conn.execute(insert(VersionTagRow), tags)
        conn.execute(
            update(ModelRow).where(ModelRow.id == model_id).values(next_version=len(drafts) + 1)
        )


def queries(
    client, rec: Recorder, prefix: str, models: int, per_model: int, n: int, budget_s: float
) -> None:
    ops = {
        "search_tag_1hit": lambda i: client.search_versions(
            tags={"seed": f"{(i * 37) % models}-{(i * 11) % per_model}"}, limit=100
        ),
        "search_tag_1pct": lambda i: client.search_versions(
            tags={"batch": f"batch-{i % 100}"}, limit=100
        ),
        "search_tag_10pct": lambda i: client.search_versions(
            tags={"team": f"team-{i % 10}"}, limit=100
        ),
        "search_tag_pair": lambda i: client.search_versions(
            tags={"team": f"team-{i % 10}", "batch": f"batch-{i % 100}"}, limit=100
        ),
        "search_by_name": lambda i: client.search_versions(
            model=f"scale-{(i * 37) % models:04d}", limit=100
        ),
        "search_name_contains": lambda i: client.search_versions(
            name_contains=f"le-{(i * 37) % models:04d}", limit=100
        ),
        "list_versions": lambda i: client.list_versions(f"scale-{(i * 37) % models:04d}"),
        "list_models_query": lambda i: client.list_models(query=f"scale-{(i * 37) % models:04d}"),
        "resolve_alias": lambda i: client.resolve(f"scale-{(i * 37) % models:04d}", "champion"),
        "get_version_by_alias": lambda i: client.get_version(
            f"scale-{(i * 37) % models:04d}", "champion"
        ),
    }
    for op, call in ops.items():
        for i in range(5):  # warm-up
            call(i)
        within = bounded(budget_s)
        hits = None
        for i in range(n):
            if not within():
                break
            key = f"{prefix}.{op}"
            with rec.time(key):
                result = call(i)
            hits = getattr(result, "total", None)
        rec.note(f"{prefix}.{op}", total_matches_last=hits)
        rec.emit(f"{prefix}.{op}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the filled home")
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--per-model", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--api-models",
        type=int,
        default=1,
        help="models filled through SqlRegistryStore.create_version",
    )
    parser.add_argument("--budget-s", type=float, default=120, help="time bound of each query loop")
    parser.add_argument("--home", type=Path, help="reuse a filled home (skips the fill)")
    args = parser.parse_args()

    import corral

    rec = Recorder(
        "corral",
        "scale",
        args.out,
        corral=corral.__version__,
        versions=args.models * args.per_model,
    )
    if args.home is not None and (args.home / "corral.db").exists():
        home = args.home
    else:
        home = args.home or Path(tempfile.mkdtemp(prefix="corral-scale-")) / "home"
        home.mkdir(parents=True)
        rec.emit_meta()
        fill(home, args.models, args.per_model, args.api_models, rec)
    db = home / "corral.db"
    rec.note("db", bytes=db.stat().st_size)

    with corral.Client(home=home) as client:
        queries(client, rec, "local", args.models, args.per_model, args.queries, args.budget_s)

    server, url = start_corral_server(home)
    try:
        wait_http(f"{url}/api/v1/health", timeout_s=120, proc=server)
        with corral.Client(url, cache_dir=home.parent / "cache") as client:
            queries(client, rec, "server", args.models, args.per_model, args.queries, args.budget_s)
    finally:
        stop(server)
    print(f"# home: {home} (db {db.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    if args.home is None and not args.keep:
        shutil.rmtree(home.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
