"""Synthetic reference/current tables for the drift benchmark (issue 4), written as Parquet.

20 numeric columns ``n00``..``n19`` (``n19`` skewed: lognormal, sigma 0.5; ``n05`` has 1 % missing
values) and 5 categorical ones ``c0``..``c4`` (strings). The current table differs from the
reference in exactly 5 columns (``DRIFTED``); every other column is drawn from the same
distribution with another seed:

- ``n00``: mean shift of +0.5 reference standard deviation;
- ``n01``: standard deviation x1.5 (same mean);
- ``n19``: the skewed column multiplied by 1.10 (+10 %);
- ``c0``: proportions 0.5/0.3/0.2 -> 0.3/0.3/0.4;
- ``c1``: proportions 0.25/0.25/0.25/0.25 -> 0.4/0.3/0.2/0.1.

Usage: python bench/drift_data.py OUT_DIR [--rows 10000 100000 1000000] [--seed 0]
Writes ``OUT_DIR/reference-<rows>.parquet``, ``OUT_DIR/current-<rows>.parquet`` and
``OUT_DIR/truth.json`` (the drifted columns and each column's kind).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

N_NUMERIC = 20
SKEWED = "n19"
WITH_MISSING = "n05"
NUMERIC = [f"n{i:02d}" for i in range(N_NUMERIC)]
CATEGORIES: dict[str, tuple[list[str], list[float]]] = {
    "c0": (["red", "green", "blue"], [0.5, 0.3, 0.2]),
    "c1": (["north", "south", "east", "west"], [0.25, 0.25, 0.25, 0.25]),
    "c2": (["basic", "plus", "pro", "enterprise", "trial"], [0.4, 0.25, 0.15, 0.1, 0.1]),
    "c3": (["yes", "no"], [0.7, 0.3]),
    "c4": ([f"segment-{i}" for i in range(8)], [0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05]),
}
CATEGORICAL = list(CATEGORIES)
CURRENT_PROPORTIONS = {"c0": [0.3, 0.3, 0.4], "c1": [0.4, 0.3, 0.2, 0.1]}
DRIFTED = ["n00", "n01", "n19", "c0", "c1"]
DRIFT_DESCRIPTION = {
    "n00": "mean +0.5 sd",
    "n01": "sd x1.5",
    "n19": "skewed (lognormal), x1.10",
    "c0": "proportions 0.5/0.3/0.2 -> 0.3/0.3/0.4",
    "c1": "proportions 0.25 x4 -> 0.4/0.3/0.2/0.1",
}


def _params(seed: int) -> dict[str, tuple[float, float]]:
    """Each normal column's (mean, sd): fixed per seed, shared by reference and current."""
    rng = np.random.default_rng(seed)
    return {name: (float(rng.uniform(-5, 50)), float(rng.uniform(0.5, 10))) for name in NUMERIC}


def make_table(rows: int, seed: int, *, current: bool) -> pa.Table:
    """The reference (``current=False``) or current table with ``rows`` rows."""
    params = _params(seed)
    rng = np.random.default_rng([seed, rows, int(current)])
    columns: dict[str, Any] = {}
    for name in NUMERIC:
        mean, sd = params[name]
        if name == SKEWED:
            values = rng.lognormal(mean=0.0, sigma=0.5, size=rows)
            if current:
                values *= 1.10
        else:
            if current and name == "n00":
                mean += 0.5 * sd
            if current and name == "n01":
                sd *= 1.5
            values = rng.normal(mean, sd, size=rows)
        if name == WITH_MISSING:
            values[rng.random(rows) < 0.01] = np.nan
            columns[name] = pa.array(values, from_pandas=True)  # NaN -> null
        else:
            columns[name] = pa.array(values)
    for name, (labels, proportions) in CATEGORIES.items():
        probs = CURRENT_PROPORTIONS.get(name, proportions) if current else proportions
        codes = rng.choice(len(labels), size=rows, p=probs).astype(np.int32)
        dictionary = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(labels))
        columns[name] = dictionary.cast(pa.string())
    return pa.table(columns)


def write(out: Path, sizes: list[int], seed: int) -> dict[str, Any]:
    """Write both tables at every size and ``truth.json``; return the truth."""
    out.mkdir(parents=True, exist_ok=True)
    for rows in sizes:
        for role, current in (("reference", False), ("current", True)):
            path = out / f"{role}-{rows}.parquet"
            if not path.exists():
                pq.write_table(make_table(rows, seed, current=current), path)
    truth = {
        "seed": seed,
        "sizes": sizes,
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "skewed": SKEWED,
        "drifted": DRIFTED,
        "drift": DRIFT_DESCRIPTION,
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write(args.out, args.rows, args.seed)
    print(args.out)


if __name__ == "__main__":
    main()
