"""Zip archives (PyTorch, skops, Keras, npz): their names, links and sizes, then every entry."""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

from corral.security._pickles import is_allowed_global
from corral.security._report import Finding, ScanLimits, Verdict

__all__ = ["scan_zip", "unsafe_member_name"]

# Scans one entry's bytes: (stream, label, depth) -> findings.
EntryScanner = Callable[[BinaryIO, str, int], list[Finding]]

_TORCH_STORAGE = re.compile(r"(^|/)data/\d+$")
# skops writes the types it stores in schema.json; these are plain values, not code.
_SKOPS_PLAIN = ("numpy", "builtins", "collections")
# Builtins that run code or reach the system, whatever skops calls them.
_DANGEROUS_BUILTINS = {
    "eval",
    "exec",
    "compile",
    "getattr",
    "setattr",
    "delattr",
    "__import__",
    "open",
    "input",
    "breakpoint",
    "globals",
    "locals",
    "vars",
    "help",
    "exit",
    "quit",
}
_KERAS_CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}


def unsafe_member_name(name: str) -> str | None:
    """Why an archive member's name could write outside the folder it is unpacked into."""
    if "\x00" in name:
        return "has a NUL byte in its name"
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "climbs out of the archive with '..'"
    return None


def scan_zip(
    fh: BinaryIO, label: str, depth: int, limits: ScanLimits, scan_entry: EntryScanner
) -> list[Finding]:
    try:
        archive = zipfile.ZipFile(fh)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return [Finding(label, "zip", Verdict.UNSAFE, (f"cannot be parsed as a zip: {exc}",))]
    with archive:
        problems = _check_members(infos, limits)
        if problems:
            return [Finding(label, "zip", Verdict.UNSAFE, tuple(problems))]
        names = {info.filename for info in infos}
        kind = _layout(names)
        findings: list[Finding] = [Finding(label, kind, Verdict.SAFE)]
        for info in infos:
            if info.is_dir():
                continue
            inner = f"{label}!{info.filename}"
            if kind == "pytorch" and _TORCH_STORAGE.search(info.filename):
                # Tensor storages are read as raw bytes, never parsed.
                findings.append(Finding(inner, "tensor-storage", Verdict.SAFE))
                continue
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
                findings.append(
                    Finding(inner, "zip-entry", Verdict.UNSAFE, (f"unreadable: {exc}",))
                )
                continue
            if kind == "keras" and info.filename == "config.json":
                findings.append(_keras_config(inner, data))
            elif kind == "skops" and info.filename == "schema.json":
                findings.append(_skops_schema(inner, data))
            elif kind == "keras" and info.filename.endswith(".h5"):
                findings.append(Finding(inner, "hdf5-weights", Verdict.SAFE))
            else:
                findings.extend(scan_entry(io.BytesIO(data), inner, depth + 1))
        return findings


def _check_members(infos: list[zipfile.ZipInfo], limits: ScanLimits) -> list[str]:
    problems: list[str] = []
    if len(infos) > limits.max_entries:
        problems.append(f"has {len(infos)} entries, more than the limit {limits.max_entries}")
    total = 0
    for info in infos:
        name = info.filename
        why = unsafe_member_name(name)
        if why:
            problems.append(f"entry {name!r} {why}")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            problems.append(f"entry {name!r} is a symbolic link")
        if info.flag_bits & 0x1:
            problems.append(f"entry {name!r} is encrypted and cannot be scanned")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
            problems.append(
                f"entry {name!r} expands {ratio:.0f} times (limit {limits.max_ratio:.0f}): "
                "a decompression bomb"
            )
    if total > limits.max_uncompressed_bytes:
        problems.append(
            f"expands to {total} bytes, more than the limit {limits.max_uncompressed_bytes}: "
            "a decompression bomb"
        )
    return problems


def _layout(names: set[str]) -> str:
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "pytorch"
    if "schema.json" in names:
        return "skops"
    if "config.json" in names and "metadata.json" in names:
        return "keras"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def _keras_config(label: str, data: bytes) -> Finding:
    try:
        config = json.loads(data)
    except ValueError as exc:
        return Finding(label, "keras-config", Verdict.UNSAFE, (f"cannot be parsed: {exc}",))
    layers = sorted({name for name in _class_names(config) if name in _KERAS_CODE_LAYERS})
    if layers:
        reasons = tuple(f"a {name} layer runs Python code stored in the file" for name in layers)
        return Finding(label, "keras-config", Verdict.UNSAFE, reasons)
    return Finding(label, "keras-config", Verdict.SAFE)


def _class_names(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str):
            found.append(node["class_name"])
        for value in node.values():
            found.extend(_class_names(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_class_names(value))
    return found


def keras_markers(data: bytes) -> list[str]:
    """Code-running layers named in an HDF5 Keras file's ``model_config`` attribute text."""
    found = re.findall(rb'"class_name":\s*"(Lambda|TFOpLambda|SlicingOpLambda)"', data)
    return sorted({m.decode() for m in found})


def _skops_schema(label: str, data: bytes) -> Finding:
    try:
        schema = json.loads(data)
    except ValueError as exc:
        return Finding(label, "skops-schema", Verdict.UNSAFE, (f"cannot be parsed: {exc}",))
    bad = sorted(
        {
            f"{module}.{name}"
            for module, name in _skops_types(schema)
            if not _skops_allowed(module, name)
        }
    )
    reasons = tuple(f"type {name} is not on the allow-list" for name in bad)
    return Finding(label, "skops-schema", Verdict.UNSAFE if bad else Verdict.SAFE, reasons)


def _skops_allowed(module: str, name: str) -> bool:
    if module.partition(".")[0] in _SKOPS_PLAIN:
        return name not in _DANGEROUS_BUILTINS
    return is_allowed_global(module, name)


def _skops_types(node: Any) -> list[tuple[str, str]]:
    """The (module, name) of every type and function a skops schema references."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        module, name = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(name, str):
            found.append((module, name))
        content = node.get("content")
        if isinstance(content, dict):
            module, name = content.get("module_path"), content.get("function")
            if isinstance(module, str) and isinstance(name, str):
                found.append((module, name))
        for value in node.values():
            found.extend(_skops_types(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_skops_types(value))
    return found
