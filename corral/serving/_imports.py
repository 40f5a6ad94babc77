"""Importing a flavor's optional dependency, with an error that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from corral.serving.errors import MissingDependency


def optional_import(module: str, *, flavor: str, extra: str) -> ModuleType:
    """``module``, or ``MissingDependency`` naming ``pip install 'corral[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(flavor, module.partition(".")[0], extra) from exc
