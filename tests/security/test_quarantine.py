"""Scanning at registration and quarantine, through the real SDK, REST server and CLI.

Malicious samples are only ever dumped (which runs nothing), never loaded: each payload would
create a marker file if it ever ran, and every test checks that it does not exist.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

import corral.store.sql
from corral import Client
from corral.config import Settings
from corral.errors import InvalidArgument, PermissionDenied
from corral.registry.errors import VersionQuarantined
from corral.registry.quarantine import ScanOutcome
from corral.store.sql import SqlRegistryStore, make_engine, upgrade_database
from corral.store.sql.migrate import HEAD, database_revision
from corral.wiring import open_corral
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import Served, example_records, training_data

RELEASE = "corral version release"


class _Payload:
    """Pickles as ``os.system(command)``: the shape of every pickle exploit."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(_Payload(f"touch {marker}"))


def _zip_slip(marker: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("weights/layer0.bin", b"\x00" * 64)
        archive.writestr(f"../../../../{marker.name}", b"escaped")
    return buffer.getvalue()


# name of the sample -> (file name in the version, bytes, words the findings must contain)
SAMPLES: dict[str, tuple[str, Callable[[Path], bytes], str]] = {
    "pickle renamed model.bin": ("model.bin", _evil_pickle, "system"),
    "pickle renamed model.skops": ("model.skops", _evil_pickle, "system"),
    "zip-slip archive": ("weights.zip", _zip_slip, "weights.zip"),
}


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """A file that exists only if a payload ran (or an archive entry escaped)."""
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a payload ran or an archive entry was written outside the store"


def _sample(tmp_path: Path, marker: Path, sample: str) -> Path:
    name, build, _ = SAMPLES[sample]
    folder = tmp_path / "sample"
    folder.mkdir()
    (folder / name).write_bytes(build(marker))
    (folder / "README.md").write_text("looks harmless\n")
    return folder


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", route_poll_seconds=0.05)


def _eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the server did not pick up the change in time"
        time.sleep(0.05)


# -- local SDK ------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_an_unsafe_upload_is_published_quarantined_with_its_report(
    tmp_path: Path, marker: Path, sample: str
) -> None:
    folder = _sample(tmp_path, marker, sample)
    with Client(settings=_settings(tmp_path), actor="ana") as client:
        client.create_model("evil")
        version = client.register("evil", folder)

        assert version.quarantined
        assert client.get_version("evil", 1).quarantined
        report = version.scan
        assert report is not None
        assert report["verdict"] == "unsafe"
        assert report["safe"] is False
        assert SAMPLES[sample][2] in report["summary"]
        unsafe = [f for f in report["findings"] if f["verdict"] == "unsafe"]
        assert unsafe
        assert unsafe[0]["path"].startswith(SAMPLES[sample][0])
        [event] = client.quarantine_history("evil", 1)
        assert (event.action, event.actor) == ("quarantine", "corral")
        assert event.reason.startswith("scan at registration: unsafe")
        actions = [e.action for e in client.list_audit(target="model:evil/version:1").items]
        assert "version.quarantine" in actions


def test_a_quarantined_version_is_neither_downloaded_nor_fetched(
    tmp_path: Path, marker: Path
) -> None:
    folder = _sample(tmp_path, marker, "pickle renamed model.bin")
    dest = tmp_path / "download"
    with Client(settings=_settings(tmp_path)) as client:
        client.create_model("evil")
        client.register("evil", folder)

        with pytest.raises(VersionQuarantined) as downloaded:
            client.download("evil", 1, dest)
        with pytest.raises(VersionQuarantined) as fetched:
            client.fetch("evil", 1)
        with pytest.raises(VersionQuarantined):
            b"".join(client.stream_file("evil", 1, "model.bin"))
        with pytest.raises(VersionQuarantined):
            client.predict("evil", [[1.0]])

    for raised in (downloaded.value, fetched.value):
        assert "version 1 of 'evil' is quarantined" in raised.message
        assert "model.bin" in raised.message
        assert f"{RELEASE} evil 1" in raised.message
    assert not dest.exists() or not any(dest.iterdir())
    cached = tmp_path / "home"
    assert not [p for p in cached.rglob("model.bin") if "versions" in p.parts]


def test_a_scanner_that_fails_quarantines_the_version(tmp_path: Path) -> None:
    folder = tmp_path / "sample"
    folder.mkdir()
    (folder / "model.json").write_text('{"trees": []}')

    def broken(found: Path) -> ScanOutcome:
        raise RuntimeError(f"cannot parse {sorted(p.name for p in found.iterdir())}")

    corral = open_corral(_settings(tmp_path))
    try:
        corral.registry.scan = broken
        corral.registry.create_model("m")
        upload = corral.registry.begin_upload()
        corral.registry.upload_file(upload, "model.json", [b'{"trees": []}'])
        version = corral.registry.create_version("m", upload)
    finally:
        corral.close()

    assert version.quarantined
    assert version.scan is not None
    assert "the scan failed (RuntimeError: cannot parse ['model.json'])" in version.scan["summary"]


def test_release_and_manual_quarantine_need_a_reason(tmp_path: Path, marker: Path) -> None:
    folder = _sample(tmp_path, marker, "pickle renamed model.bin")
    with Client(settings=_settings(tmp_path)) as client:
        client.create_model("evil")
        client.register("evil", folder)
        with pytest.raises(InvalidArgument, match="needs a reason"):
            client.release_version("evil", 1, "  ")
        with pytest.raises(InvalidArgument, match="needs a reason"):
            client.quarantine_version("evil", 1, "")
        assert client.get_version("evil", 1).quarantined


# -- REST server ----------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerThread, httpx.Client]]:
    with (
        ServerThread(_settings(tmp_path)) as running,
        httpx.Client(base_url=running.url, timeout=30) as http,
    ):
        yield running, http


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_over_rest_an_unsafe_version_is_shown_quarantined_and_refused(
    tmp_path: Path, marker: Path, sample: str, server: tuple[ServerThread, httpx.Client]
) -> None:
    running, http = server
    folder = _sample(tmp_path, marker, sample)
    file_name = SAMPLES[sample][0]
    with Client(running.url) as client:
        client.create_model("evil")
        client.register("evil", folder)
        with pytest.raises(PermissionDenied, match="quarantined"):
            client.download("evil", 1, tmp_path / "download")
        with pytest.raises(PermissionDenied, match="quarantined"):
            client.fetch("evil", 1)

    shown = http.get("/api/v1/models/evil/versions/1").json()
    downloaded = http.get(f"/api/v1/models/evil/versions/1/files/{file_name}")
    predicted = http.post("/api/v1/models/evil/predict", json={"inputs": [[1.0]]})
    inferred = http.post(
        "/v2/models/evil/infer",
        json={"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [1.0]}]},
    )
    history = http.get("/api/v1/models/evil/versions/1/quarantine").json()
    page = http.get("/models/evil")

    assert shown["quarantined"] is True
    assert shown["scan"]["verdict"] == "unsafe"
    assert SAMPLES[sample][2] in shown["scan"]["summary"]
    for response in (downloaded, predicted):
        assert response.status_code == 403, response.text
        body = response.json()
        assert body["code"] == "quarantined"
        assert "version 1 of 'evil' is quarantined" in body["detail"]
        assert SAMPLES[sample][2] in body["detail"]
        assert f"{RELEASE} evil 1" in body["detail"]
    assert inferred.status_code == 403, inferred.text
    assert "quarantined" in inferred.json()["error"]
    assert history["quarantined"] is True
    assert page.status_code == 200
    assert 'data-testid="quarantined"' in page.text
    assert SAMPLES[sample][2] in page.text
    assert f"{RELEASE} evil 1" in page.text
    assert [e["action"] for e in history["history"]] == ["quarantine"]
    assert not (tmp_path / "download").exists() or not any((tmp_path / "download").iterdir())


def test_a_safe_sklearn_model_is_not_quarantined(served: Served) -> None:
    version = served.client.get_version("clf", 1)
    assert version.quarantined is False
    assert version.scan is not None
    assert version.scan["verdict"] == "safe"
    assert version.scan["summary"].startswith("safe:")


def test_a_version_quarantined_by_hand_stops_serving_until_released_by_the_cli(
    served: Served, tmp_path: Path
) -> None:
    features, _ = training_data(seed=1, rows=3)
    body = {"inputs": example_records(features)}
    with httpx.Client(base_url=served.url, timeout=30) as http:
        assert http.post("/api/v1/models/clf/predict", json=body).status_code == 200
        refused = http.put(
            "/api/v1/models/clf/versions/1/quarantine",
            json={"quarantined": True, "reason": ""},
        )
        quarantined = http.put(
            "/api/v1/models/clf/versions/1/quarantine",
            json={"quarantined": True, "reason": "training data was poisoned (INC-77)"},
            headers={"X-Corral-Actor": "ana"},
        )
        _eventually(lambda: http.post("/api/v1/models/clf/predict", json=body).status_code == 403)
        denied = http.post("/api/v1/models/clf/predict", json=body).json()

        released = subprocess.run(
            [
                sys.executable, "-m", "corral", "--server", served.url,
                "version", "release", "clf", "1", "--reason", "INC-77 was a false alarm",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "CORRAL_HOME": str(tmp_path / "cli-home")},
            timeout=120,
            check=False,
        )  # fmt: skip
        _eventually(lambda: http.post("/api/v1/models/clf/predict", json=body).status_code == 200)
        history = http.get("/api/v1/models/clf/versions/1/quarantine").json()["history"]
        audit = http.get("/api/v1/audit", params={"target": "model:clf/version:1"}).json()

    assert refused.status_code == 400
    assert "needs a reason" in refused.json()["detail"]
    assert quarantined.status_code == 200
    assert quarantined.json()["quarantined"] is True
    assert denied["code"] == "quarantined"
    assert "quarantined by ana: training data was poisoned (INC-77)" in denied["detail"]
    assert released.returncode == 0, released.stderr
    assert "clf version 1 released from quarantine" in released.stdout
    assert [(e["action"], e["reason"]) for e in history] == [
        ("release", "INC-77 was a false alarm"),
        ("quarantine", "training data was poisoned (INC-77)"),
    ]
    actions = [e["action"] for e in audit["items"]]
    assert actions[:2] == ["version.release", "version.quarantine"]


def test_the_cli_scan_shows_the_stored_report_of_a_quarantined_version(
    tmp_path: Path, marker: Path
) -> None:
    folder = _sample(tmp_path, marker, "pickle renamed model.bin")
    settings = _settings(tmp_path)
    with Client(settings=settings) as client:
        client.create_model("evil")
        client.register("evil", folder)
    shown = subprocess.run(
        [sys.executable, "-m", "corral", "version", "scan", "evil", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "CORRAL_HOME": str(settings.home)},
        timeout=120,
        check=False,
    )
    assert shown.returncode == 1
    assert "evil@1: unsafe" in shown.stdout
    assert "model.bin" in shown.stdout
    assert "is quarantined" in shown.stderr
    assert f"{RELEASE} evil 1" in shown.stderr


# -- migration ------------------------------------------------------------------------------

MIGRATIONS = Path(corral.store.sql.__file__).resolve().parent / "migrations"


def test_versions_from_before_0005_read_as_not_quarantined(tmp_path: Path) -> None:
    from corral.registry.entities import Model

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0004")
            connection.commit()
        assert database_revision(engine) == "0004"
        SqlRegistryStore(engine).create_model(Model(name="old"))
        with engine.begin() as connection:  # a version row as 0004 wrote it
            connection.execute(
                text(
                    "INSERT INTO versions (model_id, number, status, manifest_digest, flavor, "
                    "description, metrics, params, tags, source_uri, created_by, created_at, "
                    "files, size, trusted) SELECT id, 1, 'ready', 'd', '', '', '{}', '{}', "
                    "'{}', '', '', '2026-01-01 00:00:00', '[]', 0, 0 FROM models"
                )
            )

        assert upgrade_database(engine) == HEAD

        version = SqlRegistryStore(engine).find_version("old", 1)
    finally:
        engine.dispose()
    assert version is not None
    assert (version.quarantined, version.scan) == (False, None)
