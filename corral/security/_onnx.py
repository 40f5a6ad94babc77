"""ONNX models: protobuf data, except that tensors may point at external files by path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from corral.security._report import Finding, Verdict

__all__ = ["scan_onnx"]


def scan_onnx(data: bytes, label: str, root: Path) -> Finding | None:
    """The finding for an ONNX model, or None when the bytes are not one (or onnx is absent)."""
    try:
        from google.protobuf.message import DecodeError
        from onnx import ModelProto
    except ImportError:
        return None
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError):
        return None
    if not model.HasField("graph") or not model.ir_version:
        return None
    reasons: list[str] = []
    base = (root / label).parent if "!" not in label else None
    for tensor in _tensors(model):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        why = _bad_location(location, base, root)
        if why:
            reasons.append(f"tensor {tensor.name!r} reads external data {location!r}: {why}")
    return Finding(label, "onnx", Verdict.UNSAFE if reasons else Verdict.SAFE, tuple(reasons))


def _bad_location(location: str, base: Path | None, root: Path) -> str | None:
    if not location:
        return "no location"
    if "\x00" in location or location.startswith(("/", "\\")) or location[1:2] == ":":
        return "an absolute path"
    if ".." in PurePosixPath(location.replace("\\", "/")).parts:
        return "climbs out of the folder with '..'"
    if base is None:
        return "external data inside an archive cannot be checked"
    target = base / location
    if target.is_symlink() or not target.resolve().is_relative_to(root.resolve()):
        return "points outside the folder"
    if not target.is_file():
        return "the file is missing"
    return None


def _tensors(model: Any) -> Iterator[Any]:
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _graph_tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: Any) -> Iterator[Any]:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for graph in attribute.graphs:
            yield from _graph_tensors(graph)
