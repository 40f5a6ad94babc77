"""ModelRuntime: an LRU of loaded versions within a memory budget, loading each once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from corral import Client
from corral.errors import InvalidArgument, Unavailable
from corral.serving import ModelRuntime, Predictor, UntrustedModel, VersionFiles, get_flavor
from tests.serving._helpers import FEATURES, iris, records


def _sklearn_folder(folder: Path, depth: int) -> Path:
    from sklearn.tree import DecisionTreeClassifier

    features, labels = iris()
    get_flavor("sklearn").save(
        DecisionTreeClassifier(max_depth=depth, random_state=0).fit(features, labels), folder
    )
    return folder


@pytest.fixture
def folders(tmp_path: Path) -> dict[int, Path]:
    return {n: _sklearn_folder(tmp_path / str(n), depth=3) for n in (1, 2, 3)}


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_versions_load_through_the_client_and_predict(local_client: Client, tmp_path: Path) -> None:
    features, _ = iris()
    for depth in (1, 3):
        local_client.register(
            "iris",
            _sklearn_folder(tmp_path / f"d{depth}", depth),
            flavor="sklearn",
            example=records(features[:2]),
        )

    def loader(model: str, version: int) -> VersionFiles:
        entry = local_client.get_version(model, version)
        return VersionFiles(
            local_client.fetch(model, version), entry.flavor, entry.signature, trusted=False
        )

    runtime = ModelRuntime(loader, memory_budget_bytes=10 * 1024 * 1024)
    first, second = runtime.get("iris", 1), runtime.get("iris", 2)
    assert first is not second  # versions of one model are served side by side
    assert first.input_names == FEATURES
    assert len(set(first.predict(records(features)))) == 2  # a stump has two leaves
    assert len(set(second.predict(records(features)))) == 3
    assert runtime.get("iris", 1) is first
    stats = runtime.stats()
    assert (stats.entries, stats.hits, stats.misses) == (2, 1, 2)
    assert stats.load_seconds > 0
    assert stats.size_bytes == sum(
        e.size for v in (1, 2) for e in local_client.get_version("iris", v).files
    )


def test_least_recently_used_versions_are_evicted_beyond_the_budget(
    folders: dict[int, Path],
) -> None:
    loads: list[int] = []

    def loader(model: str, version: int) -> Path:
        loads.append(version)
        return folders[version]

    size = _size(folders[1])
    runtime = ModelRuntime(loader, memory_budget_bytes=2 * size + size // 2)
    runtime.warm("m", 1)
    runtime.warm("m", 2)
    runtime.get("m", 1)  # 1 is now more recent than 2
    runtime.get("m", 3)  # over budget: 2 goes

    stats = runtime.stats()
    assert stats.versions == (("m", 1), ("m", 3))
    assert (stats.entries, stats.evictions, stats.size_bytes) == (2, 1, 2 * size)
    runtime.get("m", 2)  # loads again, evicting 1
    assert loads == [1, 2, 3, 2]
    assert runtime.stats().versions == (("m", 3), ("m", 2))


def test_evict_drops_one_version_or_all_of_a_model(folders: dict[int, Path]) -> None:
    runtime = ModelRuntime(lambda model, version: folders[version], 10 * 1024 * 1024)
    for version in (1, 2, 3):
        runtime.warm("m", version)
    assert runtime.evict("m", 2) == 1
    assert runtime.stats().versions == (("m", 1), ("m", 3))
    assert runtime.evict("m") == 2
    assert runtime.evict("other") == 0
    assert runtime.stats().size_bytes == 0


def test_concurrent_first_requests_load_a_version_once(folders: dict[int, Path]) -> None:
    calls: list[int] = []
    start = threading.Barrier(8)

    def slow_loader(model: str, version: int) -> Path:
        calls.append(version)
        time.sleep(0.2)
        return folders[version]

    runtime = ModelRuntime(slow_loader, 10 * 1024 * 1024)
    results: list[Predictor] = []
    errors: list[BaseException] = []

    def request() -> None:
        start.wait()
        try:
            results.append(runtime.get("m", 1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert calls == [1]
    assert len(results) == 8
    assert all(r is results[0] for r in results)
    stats = runtime.stats()
    assert (stats.misses, stats.hits) == (1, 7)


def test_a_slow_load_does_not_hold_up_other_versions(folders: dict[int, Path]) -> None:
    release = threading.Event()

    def loader(model: str, version: int) -> Path:
        if version == 1:
            assert release.wait(timeout=30)
        return folders[version]

    runtime = ModelRuntime(loader, 10 * 1024 * 1024)
    slow = threading.Thread(target=runtime.warm, args=("m", 1))
    slow.start()
    try:
        runtime.get("m", 2)  # returns while version 1 is still loading
        assert runtime.stats().versions == (("m", 2),)
    finally:
        release.set()
        slow.join(timeout=30)
    assert runtime.stats().entries == 2


def test_a_failed_load_is_not_cached(folders: dict[int, Path]) -> None:
    attempts: list[int] = []

    def flaky(model: str, version: int) -> Path:
        attempts.append(version)
        if len(attempts) == 1:
            raise Unavailable("artifact store is down")
        return folders[version]

    runtime = ModelRuntime(flaky, 10 * 1024 * 1024)
    with pytest.raises(Unavailable, match="down"):
        runtime.get("m", 1)
    assert runtime.get("m", 1).predict([[5.0, 3.0, 1.5, 0.2]]).tolist() == [0]
    assert attempts == [1, 1]
    assert runtime.stats().misses == 2


def test_a_version_larger_than_the_budget_is_refused_naming_both(
    folders: dict[int, Path],
) -> None:
    runtime = ModelRuntime(lambda model, version: folders[version], memory_budget_bytes=100)
    with pytest.raises(Unavailable, match=r"model 'm' version 1 needs about \d+ bytes"):
        runtime.get("m", 1)
    assert runtime.stats().entries == 0


def test_the_budget_must_be_positive() -> None:
    with pytest.raises(InvalidArgument, match="must be positive"):
        ModelRuntime(lambda model, version: Path(), memory_budget_bytes=0)


def test_untrusted_code_is_refused_through_the_runtime(tmp_path: Path) -> None:
    (tmp_path / "predictor.py").write_text("class Model:\n    def predict(self, x): return x\n")
    runtime = ModelRuntime(lambda model, version: VersionFiles(tmp_path, "python"), 1 << 20)
    with pytest.raises(UntrustedModel, match="mark the version trusted"):
        runtime.get("m", 1)
    trusted = ModelRuntime(lambda m, v: VersionFiles(tmp_path, "python", trusted=True), 1 << 20)
    np.testing.assert_array_equal(trusted.get("m", 1).predict([[1, 2]]), [[1, 2]])
