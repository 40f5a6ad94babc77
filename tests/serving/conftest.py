from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from corral import Client


@pytest.fixture
def local_client(tmp_path: Path) -> Iterator[Client]:
    """The SDK on a fresh local Corral home (SQLite + a folder)."""
    with Client(home=tmp_path / "home", actor="tester") as client:
        yield client
