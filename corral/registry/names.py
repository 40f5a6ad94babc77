"""Validation of names and artifact paths: the first line of defence against traversal."""

from __future__ import annotations

import re

from corral.errors import InvalidArgument

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
MAX_PATH_LENGTH = 1024


def validate_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid name of a model, alias, config or consumer."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        shown = repr(value) if len(str(value)) <= 60 else repr(str(value)[:60]) + "…"
        raise InvalidArgument(
            f"{kind} name {shown} is invalid: use 1 to 128 characters of a-z, 0-9, '-', '_' "
            "and '.', starting with a letter or digit"
        )
    return value


def validate_artifact_path(path: str) -> str:
    """Return the normalised relative POSIX path of a file inside a version, or refuse."""
    shown = repr(path) if len(path) <= 80 else repr(path[:80]) + "…"
    if not path or len(path) > MAX_PATH_LENGTH:
        raise InvalidArgument(f"file path {shown} must have 1 to {MAX_PATH_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise InvalidArgument(f"file path {shown} contains a control character")
    if "\\" in path:
        raise InvalidArgument(f"file path {shown} contains a backslash; use '/'")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise InvalidArgument(f"file path {shown} is absolute; paths are relative to the version")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidArgument(
            f"file path {shown} has an empty, '.' or '..' segment: it must stay inside the version"
        )
    return path
