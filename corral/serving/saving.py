"""Saving an in-memory model as a version's folder of files (``Client.log_model``).

The flavor comes from the object's library: scikit-learn (skops), XGBoost and LightGBM
(their native formats), ONNX (``ModelProto``), else ``python`` (the class's source file
and the object's attributes). Nothing is ever pickled. A scikit-learn model is loaded back
before it is registered, so one with types outside Corral's allow-list is refused first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corral.errors import InvalidArgument
from corral.serving._sklearn import MODEL_FILE, SklearnFlavor, allowed_type
from corral.serving.flavors import get_flavor, load_predictor

__all__ = ["flavor_of", "save_model"]

# The library a class comes from → its flavor. XGBoost's and LightGBM's scikit-learn
# wrappers also derive from scikit-learn's classes, so they are looked for first.
_LIBRARY_FLAVORS = (
    ("onnx", "onnx"),
    ("xgboost", "xgboost"),
    ("lightgbm", "lightgbm"),
    ("sklearn", "sklearn"),
)


def flavor_of(model: Any) -> str:
    """The flavor that saves ``model``, from the library its class comes from."""
    libraries = {cls.__module__.partition(".")[0] for cls in type(model).__mro__}
    for library, flavor in _LIBRARY_FLAVORS:
        if library in libraries:
            return flavor
    if callable(getattr(model, "predict", None)):
        return "python"
    raise InvalidArgument(
        f"Corral cannot tell how to save a {type(model).__name__}: log a scikit-learn "
        "estimator, an XGBoost or LightGBM model, an onnx.ModelProto, or an object with a "
        "predict() method whose class is defined in a .py file; or register a folder"
    )


def save_model(model: Any, folder: Path, *, flavor: str | None = None, example: Any = None) -> str:
    """Write ``model`` under ``folder`` in its flavor (detected when not given); the flavor."""
    name = flavor or flavor_of(model)
    get_flavor(name).save(model, folder, example)
    if name == "sklearn":
        _check_loads_untrusted(model, folder)
    return name


def _check_loads_untrusted(model: Any, folder: Path) -> None:
    """Refuse a skops file the server would load only once an admin trusts the version."""
    sklearn = SklearnFlavor()
    refused = [
        t
        for t in sklearn.untrusted_types((folder / MODEL_FILE).read_bytes(), MODEL_FILE)
        if not allowed_type(t)
    ]
    if refused:
        raise InvalidArgument(
            f"cannot save this {type(model).__name__} as 'sklearn': it holds types outside "
            f"Corral's scikit-learn/NumPy/SciPy allow-list: {', '.join(refused)}; build it "
            "from library types only, convert it to ONNX, or save it with skops.io.dump and "
            "register the file (that version loads only once an admin marks it trusted)"
        )
    load_predictor(folder, "sklearn")
