"""Flavors: how a version's files become a ``Predictor``.

Built-ins: ``sklearn`` (skops), ``onnx``, ``xgboost``, ``lightgbm`` (native formats that
carry no code), and ``python``, ``pickle``, ``joblib`` (code-bearing: they load only for a
trusted version). Each declares the pip extra its optional dependency comes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from corral.errors import InvalidArgument
from corral.registry.entities import Signature
from corral.serving._code import JoblibFlavor, PickleFlavor, PythonFlavor
from corral.serving._files import folder_files
from corral.serving._native import LightGBMFlavor, OnnxFlavor, XGBoostFlavor
from corral.serving._sklearn import SklearnFlavor
from corral.serving.errors import UnknownFlavor
from corral.serving.predictor import Predictor

# What the registry records when it recognised no file: detect at load time instead.
_UNSET = ("", "files")


class Flavor(Protocol):
    """One way of saving and loading models."""

    name: str
    extra: str  # the pip extra with the optional dependency ("" when none is needed)
    needs_trust: bool  # loading runs code from the version

    def detect(self, paths: list[Path]) -> bool:
        """Whether these files (by name or content) are a model of this flavor."""
        ...

    def load(self, folder: Path, *, trusted: bool, signature: Signature | None = None) -> Predictor:
        """The predictor for a version's folder of verified files."""
        ...

    def save(self, model: Any, folder: Path, example: Any = None) -> list[str]:
        """Write an in-memory model under ``folder``; the paths written."""
        ...


# Safe formats first, so a folder that also ships code or a pickle loads without trust.
_BUILT_INS: tuple[Flavor, ...] = (
    SklearnFlavor(),
    OnnxFlavor(),
    XGBoostFlavor(),
    LightGBMFlavor(),
    PythonFlavor(),
    JoblibFlavor(),
    PickleFlavor(),
)

FLAVORS: Mapping[str, Flavor] = MappingProxyType({f.name: f for f in _BUILT_INS})


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``; ``UnknownFlavor`` otherwise."""
    try:
        return FLAVORS[name]
    except KeyError:
        raise UnknownFlavor(name, FLAVORS) from None


def detect_flavor(paths: Iterable[Path]) -> str | None:
    """The first flavor (safe ones first) that recognises these files, or None."""
    files = [Path(p) for p in paths]
    return next((f.name for f in _BUILT_INS if f.detect(files)), None)


def load_predictor(
    folder: Path,
    flavor: str = "",
    *,
    trusted: bool = False,
    signature: Signature | None = None,
) -> Predictor:
    """Load a version's folder with its flavor (detected when the registry recorded none)."""
    if flavor in _UNSET:
        detected = detect_flavor(folder_files(folder))
        if detected is None:
            raise InvalidArgument(
                f"no flavor recognises the files in '{folder}'; register the version with "
                f"one of: {', '.join(FLAVORS)}"
            )
        flavor = detected
    return get_flavor(flavor).load(folder, trusted=trusted, signature=signature)
