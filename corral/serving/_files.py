"""Finding a flavor's model file in a version's folder, by name or by content."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from corral.errors import InvalidArgument

_HEAD = 64


def folder_files(folder: Path) -> list[Path]:
    """Every regular file under a version's folder, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def head(path: Path, size: int = _HEAD) -> bytes:
    """The first bytes of a file (empty if it cannot be read)."""
    try:
        with path.open("rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def with_suffix(paths: Iterable[Path], suffixes: Sequence[str]) -> list[Path]:
    return [p for p in paths if p.name.lower().endswith(tuple(suffixes))]


def pick_file(
    folder: Path, flavor: str, matches: Callable[[Path], bool], what: str, preferred: str
) -> Path:
    """The one file of a version that ``matches``; ``preferred`` breaks a tie."""
    found = [p for p in folder_files(folder) if matches(p)]
    if not found:
        raise InvalidArgument(f"flavor '{flavor}' found no {what} in the version's files")
    if len(found) == 1:
        return found[0]
    for path in found:
        if path.relative_to(folder).as_posix() == preferred:
            return path
    names = ", ".join(p.relative_to(folder).as_posix() for p in found)
    raise InvalidArgument(
        f"flavor '{flavor}' found several {what}s ({names}); name the one to serve '{preferred}'"
    )


class FileFlavor:
    """A flavor recognised by its model file: subclasses say which file (``_is_model``)."""

    @staticmethod
    def _is_model(path: Path) -> bool:
        raise NotImplementedError

    def detect(self, paths: list[Path]) -> bool:
        return any(self._is_model(p) for p in paths)
