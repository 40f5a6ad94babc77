"""Helpers for the serving tests: optional libraries, tiny models, a local Corral."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from corral import Client
from corral.serving import VersionFiles

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def need(module: str) -> ModuleType:
    """The module, or a skip when it is missing (a failure on CI, where the test extra has it)."""
    if os.environ.get("CI") == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module)


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    return features, labels


def records(rows: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(FEATURES, map(float, row), strict=True)) for row in rows]


def register(
    client: Client, model: str, folder: Path, flavor: str, example: Any = None
) -> VersionFiles:
    """Register a folder, fetch it back verified, and describe it for the runtime."""
    version = client.register(model, folder, flavor=flavor, example=example)
    return VersionFiles(
        folder=client.fetch(model, version.number),
        flavor=version.flavor,
        signature=version.signature,
    )
