"""Integrity alerts: a version whose signature fails verification opens one monitoring alert
(per version), listed by the service and the REST API and delivered to the model's webhooks.

Real stores on SQLite and PostgreSQL, a real server and a real webhook receiver on loopback;
the tampering rewrites the version's record as an attacker with database access would."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from corral import Client
from corral.access import Principal, Role, acting_as
from corral.config import Settings
from corral.errors import PermissionDenied
from corral.monitoring.entities import Alert, AlertState
from corral.registry.errors import SignatureInvalid
from corral.store.sql.tables import ModelRow, VersionRow
from corral.wiring import Corral, open_corral
from tests.fixtures.corral import ServerThread
from tests.fixtures.webhooks import Receiver

SECRET = "whsec-0123456789abcdef"
SOURCE = "signature:clf/1"
VIEWER = Principal(name="vic", global_role=Role.VIEWER)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """A home on SQLite or PostgreSQL with 'clf' version 1 (signed) registered."""
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        cache_dir=tmp_path / "cache",
        outbound_allow_private=True,  # the receiver listens on 127.0.0.1
    )
    folder = tmp_path / "v1"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (folder / "README.md").write_text("version 1\n")
    with Client(settings=settings, actor="tester") as client:
        client.register("clf", folder)
    return settings


@pytest.fixture
def wired(settings: Settings, receiver: Receiver) -> Iterator[Corral]:
    corral = open_corral(settings)
    try:
        corral.monitoring.create_webhook(receiver.url, SECRET, model="clf")
        yield corral
    finally:
        corral.close()


def _tamper(corral: Corral) -> None:
    """Point version 1 at a consistent manifest of its files with one byte changed: every
    digest matches, only the signature can tell."""
    registry, artifacts = corral.registry, corral.registry.artifacts
    version = registry.get_version("clf", 1)
    upload = artifacts.begin_upload()
    for entry in version.files:
        data = bytearray(b"".join(artifacts.read_file(entry)))
        if entry.path == "weights.bin":
            data[len(data) // 2] ^= 0xFF
        writer = artifacts.open_writer(upload, entry.path, 1 << 30)
        writer.write(bytes(data))
        writer.close()
    manifest = artifacts.put_manifest(artifacts.upload_entries(upload))
    model_id = select(ModelRow.id).where(ModelRow.name == "clf").scalar_subquery()
    with corral.engine.begin() as db:
        db.execute(
            update(VersionRow)
            .where(VersionRow.model_id == model_id, VersionRow.number == 1)
            .values(
                manifest_digest=manifest.digest,
                files=[
                    {"path": f.path, "size": f.size, "sha256": f.sha256} for f in manifest.files
                ],
            )
        )


def _refused(corral: Corral) -> None:
    with pytest.raises(SignatureInvalid, match=r"version 1 of 'clf' failed signature"):
        corral.registry.verify_version("clf", 1)


def _open_alerts(corral: Corral) -> list[Alert]:
    return corral.monitoring.list_alerts("clf", "open")


def test_a_signature_failure_opens_one_alert_listed_and_delivered_to_the_webhook(
    wired: Corral, settings: Settings, receiver: Receiver
) -> None:
    wired.registry.verify_version("clf", 1)  # untouched: no alert
    assert _open_alerts(wired) == []
    _tamper(wired)

    _refused(wired)
    (alert,) = _open_alerts(wired)
    assert (alert.model, alert.source, alert.objective_id) == ("clf", SOURCE, 0)
    assert "version 1 of 'clf' failed signature" in alert.message
    assert receiver.events == ["opened"]
    (body,) = receiver.bodies
    assert body["model"] == "clf"
    assert body["objective"] is None
    assert (body["alert"]["id"], body["alert"]["source"]) == (alert.id, SOURCE)
    deliveries = wired.monitoring.list_deliveries(alert.id)
    assert [(d.event, d.succeeded) for d in deliveries] == [("opened", True)]

    # A second failure, by a mere viewer, updates that alert: no duplicate, no new notice.
    with acting_as(VIEWER):
        _refused(wired)
    assert [a.id for a in _open_alerts(wired)] == [alert.id]
    assert receiver.events == ["opened"]

    # The server refuses it too (its own wiring, the same database): still the one alert.
    with ServerThread(settings.model_copy(update={"cache_dir": settings.home / "srv"})) as srv:
        verify = httpx.post(f"{srv.url}/api/v1/models/clf/versions/1/verify", timeout=60)
        assert verify.status_code == 409, verify.text
        assert verify.json()["code"] == "signature_invalid"
        listed = httpx.get(f"{srv.url}/api/v1/alerts", params={"state": "open"})
        assert listed.status_code == 200, listed.text
        (shown,) = listed.json()
        page = httpx.get(f"{srv.url}/models/clf/monitoring", timeout=60)
        assert page.status_code == 200, page.text
        assert "signature check failed (clf/1)" in page.text
    assert (shown["id"], shown["source"], shown["objective_id"]) == (alert.id, SOURCE, 0)
    assert shown["model"] == "clf"
    assert receiver.events == ["opened"]


def test_an_admin_closes_an_integrity_alert_and_a_new_failure_opens_another(
    wired: Corral, receiver: Receiver
) -> None:
    _tamper(wired)
    _refused(wired)
    (alert,) = _open_alerts(wired)
    with acting_as(VIEWER), pytest.raises(PermissionDenied):
        wired.monitoring.close_alert(alert.id)

    closed = wired.monitoring.close_alert(alert.id, actor="tester")
    assert closed.state == AlertState.CLOSED
    assert closed.closed_at is not None
    assert _open_alerts(wired) == []
    assert receiver.events == ["opened", "closed"]
    assert wired.monitoring.close_alert(alert.id) == closed  # closing twice changes nothing

    _refused(wired)
    (again,) = _open_alerts(wired)
    assert again.id != alert.id
    assert again.source == SOURCE
    assert receiver.events == ["opened", "closed", "opened"]


def test_a_failing_alert_hook_still_refuses_the_version(
    wired: Corral, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(model: str, version: int, reason: str) -> None:
        raise RuntimeError("monitoring is down")

    wired.registry.on_signature_invalid = broken
    _tamper(wired)
    with caplog.at_level(logging.ERROR, logger="corral.registry"):
        _refused(wired)
    assert "could not raise the alert of version 1 of 'clf'" in caplog.text
    assert _open_alerts(wired) == []
