"""The benchmark's synthetic data: 20 numeric and 5 categorical columns, 5 of them drifted."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

CATEGORIES = np.array(["red", "green", "blue", "black", "white"], dtype=object)
STABLE_PROPORTIONS = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
DRIFTED = ["mean_shift", "variance", "skewed", "proportions", "shift_down"]


def drift_tables(
    rows: int, seed: int = 0
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
    """``(reference, current)``: the same distributions but for the five ``DRIFTED``."""
    rng = np.random.default_rng(seed)

    def side(drift: bool) -> dict[str, npt.NDArray[Any]]:
        columns: dict[str, npt.NDArray[Any]] = {}
        columns["mean_shift"] = rng.normal(10, 2, rows) + (1.0 if drift else 0.0)  # 0.5 sd
        columns["variance"] = rng.normal(0, 1.5 if drift else 1.0, rows)
        columns["skewed"] = rng.lognormal(0, 0.5, rows) * (1.1 if drift else 1.0)
        columns["shift_down"] = rng.normal(-3, 4, rows) - (2.0 if drift else 0.0)
        for i in range(16):
            columns[f"stable_{i}"] = rng.normal(i, 1 + i % 4, rows)
        proportions = [0.25, 0.25, 0.2, 0.15, 0.15] if drift else STABLE_PROPORTIONS
        columns["proportions"] = CATEGORIES[rng.choice(5, rows, p=proportions)]
        for i in range(4):
            columns[f"category_{i}"] = CATEGORIES[rng.choice(5, rows, p=STABLE_PROPORTIONS)]
        return columns

    return side(False), side(True)
