"""Drift benchmark (issue 4): Corral's drift report vs a numpy/scipy floor vs Evidently.

Usage: python bench/drift_bench.py DATA_DIR OUT_DIR [--sizes 10000 100000 1000000] [--runs 3]
       [--evidently-runs-1m 3] [--systems corral floor floor-tests evidently]
DATA_DIR holds the Parquet files of ``bench/drift_data.py``. Every measurement is a fresh
process (``bench/drift_run.py``), so its peak RSS is its own; the systems take turns inside
each round (the order flips every round) so that a change of machine load hits them all. Writes
``OUT_DIR/drift.jsonl`` (one line per run) and ``OUT_DIR/meta.json``; ``drift_report.py``
turns them into markdown. Evidently runs in ``bench/.venvs/evidently`` (setup_peers.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EVIDENTLY_PYTHON = HERE / ".venvs" / "evidently" / "bin" / "python"
RUNNER = HERE / "drift_run.py"
SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
TIMEOUT_S = 1800


def loaded_bytes(path: Path) -> dict[str, int]:
    """The table's size in memory as Arrow (float64 numbers, strings as offsets + bytes).

    Read one column at a time (``Table.nbytes`` of each), so measuring it costs little memory.
    ``float64`` is the size if every column were a float64 array (8 bytes a value).
    """
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    arrow = sum(parquet.read(columns=[name]).nbytes for name in parquet.schema_arrow.names)
    rows, columns = parquet.metadata.num_rows, parquet.metadata.num_columns
    return {
        "arrow": arrow,
        "float64": rows * columns * 8,
        "rows": rows,
        "file": path.stat().st_size,
    }


def _timed(argv: list[str], env: dict[str, str]) -> tuple[str, str, int, float]:
    """Run a command: (stdout, stderr, exit code, wall seconds of the whole process).

    The peak RSS comes from the process itself (drift_run.py prints its ``ru_maxrss``) or from
    ``/usr/bin/time -v``: RUSAGE_CHILDREN would be the maximum over all children so far.
    """
    started = time.perf_counter()
    with subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\nkilled after {TIMEOUT_S} s"
    return out, err, proc.returncode, time.perf_counter() - started


def run_once(system: str, reference: Path, current: Path) -> dict[str, Any]:
    """One measurement in a fresh process."""
    env = dict(os.environ)
    if system.startswith("floor"):
        env.update(SINGLE_THREAD)
    python = str(EVIDENTLY_PYTHON) if system == "evidently" else sys.executable
    load = os.getloadavg()[0]
    out, err, code, wall = _timed([python, str(RUNNER), system, str(reference), str(current)], env)
    if code != 0:
        return {
            "system": system,
            "error": err.strip().splitlines()[-1:] or [f"exit {code}"],
            "load_1m": load,
            "process_seconds": wall,
        }
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result.update(load_1m=load, process_seconds=wall)
    return result


def run_cli(reference: Path, current: Path) -> dict[str, Any]:
    """``corral monitor drift --reference --current --json`` once: whole process, for info."""
    corral = shutil.which("corral")
    argv = [corral] if corral else [sys.executable, "-m", "corral"]
    argv += ["monitor", "drift", "--reference", str(reference), "--current", str(current), "--json"]
    # /usr/bin/time -v gives the peak RSS of a process we do not control.
    timer = shutil.which("time") or "/usr/bin/time"
    has_timer = Path(timer).exists()
    if has_timer:
        argv = [timer, "-v", *argv]
    load = os.getloadavg()[0]
    out, err, code, wall = _timed(argv, dict(os.environ))
    result: dict[str, Any] = {"system": "corral-cli", "process_seconds": wall, "load_1m": load}
    if has_timer:
        for line in err.splitlines():
            if "Maximum resident set size" in line:
                result["peak_rss"] = int(line.split(":")[1]) * 1024
    if code not in (0, 2):
        tail = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("\t")]
        result["error"] = tail[-3:] or [f"exit {code}"]
        return result
    try:
        report = json.loads(out)
    except json.JSONDecodeError as exc:
        result["error"] = [f"not JSON: {exc}"]
        return result
    result["flagged"] = [c["name"] for c in report.get("columns", []) if c.get("drifted")]
    return result


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("corral", "numpy", "scipy", "pyarrow", "duckdb"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--evidently-runs-1m", type=int, default=3)
    parser.add_argument(
        "--systems", nargs="+", default=["corral", "floor", "floor-tests", "evidently"]
    )
    parser.add_argument("--no-cli", action="store_true", help="skip the timed CLI run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    truth = json.loads((args.data / "truth.json").read_text())
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "nproc": os.cpu_count(),
        "versions": versions(),
        "truth": truth,
        "runs": args.runs,
        "evidently_runs_1m": args.evidently_runs_1m,
        "sizes": {},
    }
    lines = (args.out / "drift.jsonl").open("a")
    for rows in args.sizes:
        reference = args.data / f"reference-{rows}.parquet"
        current = args.data / f"current-{rows}.parquet"
        size = {
            "reference": loaded_bytes(reference),
            "current": loaded_bytes(current),
            "load_start": os.getloadavg(),
        }
        for rnd in range(args.runs):
            # Neighbours stay neighbours (Corral next to the floor), the order flips each round.
            order = args.systems if rnd % 2 == 0 else args.systems[::-1]
            for system in order:
                if system == "evidently" and rows >= 1_000_000 and rnd >= args.evidently_runs_1m:
                    continue
                result = run_once(system, reference, current)
                result.update(rows=rows, round=rnd)
                print(json.dumps(result), file=sys.stderr, flush=True)
                lines.write(json.dumps(result) + "\n")
                lines.flush()
        if not args.no_cli and "corral" in args.systems:
            result = run_cli(reference, current)
            result.update(rows=rows, round=0)
            print(json.dumps(result), file=sys.stderr, flush=True)
            lines.write(json.dumps(result) + "\n")
            lines.flush()
        size["load_end"] = os.getloadavg()
        meta["sizes"][str(rows)] = size
    meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
