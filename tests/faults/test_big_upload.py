"""A multi-GB upload and download stream: the server's memory stays flat."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from corral import Client
from tests.faults._corral import ServerProcess

GIB = 1 << 30
MAX_SERVER_RSS = 300 * 1024 * 1024
MAX_CLIENT_GROWTH = 200 * 1024 * 1024


def _rss(process: psutil.Process) -> int:
    total = 0
    for proc in (process, *process.children(recursive=True)):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


@contextmanager
def _peak_rss(pid: int, every: float = 0.05) -> Iterator[list[int]]:
    """Sample the RSS of ``pid`` and its children; yields [peak] (final after the block)."""
    process = psutil.Process(pid)
    peak = [_rss(process)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            peak[0] = max(peak[0], _rss(process))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join(timeout=10)
        peak[0] = max(peak[0], _rss(process))


@pytest.fixture
def big_file(tmp_path: Path) -> Iterator[Path]:
    """1 GiB of a repeated random 1 MiB block (the server cannot dedupe within a file)."""
    path = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with path.open("wb") as fh:
        for _ in range(GIB // len(block)):
            fh.write(block)
    yield path
    path.unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_one_gib_upload_and_download_stream_in_bounded_memory(
    tmp_path: Path, big_file: Path, record_property: Callable[[str, object], None]
) -> None:
    dest = tmp_path / "download"
    try:
        with ServerProcess(tmp_path / "home", tmp_path) as server, Client(server.url) as client:
            with _peak_rss(server.pid) as upload_peak:
                version = client.register("big", big_file)
            record_property("server_peak_rss_upload_mib", upload_peak[0] >> 20)

            assert upload_peak[0] < MAX_SERVER_RSS, f"server peak {upload_peak[0] >> 20} MiB"
            assert version.size == GIB
            assert client.verify_version("big", version.number).bytes_checked == GIB

            client_baseline = _rss(psutil.Process())
            with _peak_rss(server.pid) as download_peak, _peak_rss(os.getpid()) as client_peak:
                client.download("big", version.number, dest)
            record_property("server_peak_rss_download_mib", download_peak[0] >> 20)

            assert download_peak[0] < MAX_SERVER_RSS, f"server peak {download_peak[0] >> 20} MiB"
            assert client_peak[0] - client_baseline < MAX_CLIENT_GROWTH
            assert (dest / "big.bin").stat().st_size == GIB
    finally:
        (dest / "big.bin").unlink(missing_ok=True)
