"""``ModelRuntime``: loaded versions, cached within a memory budget (LRU).

The runtime knows nothing of the registry or the artifact store: a ``loader`` callable
turns ``(model, version)`` into a local folder of verified files (plus the version's
flavor, signature and trust), and the runtime loads that folder once and keeps it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from corral.errors import InvalidArgument, Unavailable
from corral.registry.entities import Signature
from corral.serving._files import folder_files
from corral.serving.flavors import load_predictor
from corral.serving.predictor import Predictor

Key = tuple[str, int]


@dataclass(frozen=True, slots=True)
class VersionFiles:
    """What the runtime needs to load one version: its folder and how to read it."""

    folder: Path
    flavor: str = ""
    signature: Signature | None = None
    trusted: bool = False


Loader = Callable[[str, int], VersionFiles | Path]


@dataclass(frozen=True, slots=True)
class RuntimeStats:
    entries: int
    size_bytes: int
    budget_bytes: int
    hits: int
    misses: int  # gets that had to load (including loads that failed)
    evictions: int
    load_seconds: float  # total time spent loading
    versions: tuple[Key, ...]  # least recently used first


@dataclass(frozen=True, slots=True)
class _Entry:
    predictor: Predictor
    size: int


def estimate_size(folder: Path) -> int:
    """Bytes a loaded version is taken to hold: the size of its files."""
    return sum(p.stat().st_size for p in folder_files(folder))


class ModelRuntime:
    """Thread-safe LRU cache of loaded versions, bounded by ``memory_budget_bytes``.

    Concurrent first requests for one version load it once; requests for other
    versions are not held up meanwhile.
    """

    def __init__(
        self,
        loader: Loader,
        memory_budget_bytes: int,
        *,
        clock: Callable[[], float] = time.perf_counter,
        on_load: Callable[[str, int, float], None] | None = None,
    ) -> None:
        if memory_budget_bytes <= 0:
            raise InvalidArgument(
                f"the memory budget must be positive, not {memory_budget_bytes} bytes"
            )
        self._loader = loader
        self._budget = memory_budget_bytes
        self._clock = clock
        self._on_load = on_load
        self._lock = threading.Lock()  # guards everything below; never held while loading
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._loading: dict[Key, threading.Lock] = {}
        self._size = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._load_seconds = 0.0

    def _cached(self, key: Key) -> Predictor | None:
        """The cached predictor (marked most recently used), under ``self._lock``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return entry.predictor

    def peek(self, model: str, version: int) -> Predictor | None:
        """The version if it is loaded, without loading it (never blocks on a load)."""
        with self._lock:
            return self._cached((model, version))

    def get(self, model: str, version: int) -> Predictor:
        """The loaded version, loading it (once, whoever asks at the same time) if needed."""
        key = (model, version)
        with self._lock:
            predictor = self._cached(key)
            if predictor is not None:
                return predictor
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                predictor = self._cached(key)
                if predictor is not None:
                    return predictor
                self._misses += 1
            try:
                return self._load(key)
            finally:
                with self._lock:
                    if self._loading.get(key) is key_lock:
                        del self._loading[key]

    def _load(self, key: Key) -> Predictor:
        model, version = key
        started = self._clock()
        try:
            files = self._loader(model, version)
            if not isinstance(files, VersionFiles):
                files = VersionFiles(folder=Path(files))
            size = estimate_size(files.folder)
            if size > self._budget:
                raise Unavailable(
                    f"model '{model}' version {version} needs about {size} bytes, more than "
                    f"the serving memory budget of {self._budget} bytes"
                )
            predictor = load_predictor(
                files.folder, files.flavor, trusted=files.trusted, signature=files.signature
            )
        finally:
            elapsed = self._clock() - started
            with self._lock:
                self._load_seconds += elapsed
        if self._on_load is not None:
            self._on_load(model, version, self._clock() - started)
        with self._lock:
            self._entries[key] = _Entry(predictor, size)
            self._size += size
            # Least recently used first; the version just loaded is the most recent.
            while self._size > self._budget:
                _, evicted = self._entries.popitem(last=False)
                self._size -= evicted.size
                self._evictions += 1
        return predictor

    def warm(self, model: str, version: int) -> None:
        """Load a version ahead of its first request (e.g. when an alias moves to it)."""
        self.get(model, version)

    def evict(self, model: str, version: int | None = None) -> int:
        """Drop one version (or every version) of a model; how many were dropped."""
        with self._lock:
            keys = [k for k in self._entries if k[0] == model and version in (None, k[1])]
            for key in keys:
                self._size -= self._entries.pop(key).size
            self._evictions += len(keys)
            return len(keys)

    def stats(self) -> RuntimeStats:
        with self._lock:
            return RuntimeStats(
                entries=len(self._entries),
                size_bytes=self._size,
                budget_bytes=self._budget,
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                load_seconds=self._load_seconds,
                versions=tuple(self._entries),
            )
