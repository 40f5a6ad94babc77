"""Quarantine: the scan of a version's files at registration, and what an unsafe verdict blocks.

The registry does not scan: ``corral.security`` does, handed in by ``corral.wiring`` as a
``scan`` callable that reads a folder and returns a :class:`ScanOutcome`. The registry copies
the upload's stored bytes (each verified against its digest) into a private folder, passes it
to the scan and publishes the version quarantined when the verdict is unsafe. A quarantined
version is neither served nor downloaded (by anyone, admins included) until an admin releases
it with a reason; only admins quarantine or release.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.access import Action, require
from corral.errors import InvalidArgument
from corral.registry.entities import FileEntry, ModelVersion, QuarantineEvent
from corral.registry.errors import VersionQuarantined
from corral.registry.fetching import write_verified

if TYPE_CHECKING:
    from corral.registry.audit import Recorder
    from corral.registry.ports import ArtifactStore, RegistryStore

__all__ = ["QuarantineVerbs", "ScanOutcome", "scan_upload"]

# The actor of quarantines the registry decides itself (an unsafe scan at registration).
SCANNER_ACTOR = "corral"


@dataclass(frozen=True)
class ScanOutcome:
    """What the registry keeps of a scan: the verdict, one line for people, the full report."""

    safe: bool
    summary: str
    report: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The report stored on the version, with the verdict and summary always present."""
        return {
            **self.report,
            "verdict": "safe" if self.safe else "unsafe",
            "safe": self.safe,
            "summary": self.summary,
        }


Scan = Callable[[Path], ScanOutcome]


def scan_upload(artifacts: ArtifactStore, entries: list[FileEntry], scan: Scan) -> ScanOutcome:
    """Scan the stored bytes of an upload's files, laid out under their paths in a private
    temporary folder; a scan that fails is an unsafe verdict, never a clean one."""
    with tempfile.TemporaryDirectory(prefix="corral-scan-") as tmp:
        folder = Path(tmp) / "files"
        folder.mkdir()
        for entry in entries:
            write_verified(entry, folder, artifacts.read_file(entry), None)
        try:
            return scan(folder)
        except Exception as exc:  # any scanner failure must read as unsafe, not as clean
            reason = f"the scan failed ({type(exc).__name__}: {exc})"
            return ScanOutcome(safe=False, summary=reason, report={"error": reason})


class QuarantineVerbs:
    """``RegistryService``'s quarantine verbs (kept apart to keep the service readable)."""

    if TYPE_CHECKING:
        store: RegistryStore
        _clock: Callable[[], datetime]

        def get_version(self, model: str, ref: int | str) -> ModelVersion: ...

        def _audit(self, actor: str) -> AbstractContextManager[Recorder]: ...

    def set_quarantine(
        self,
        model: str,
        ref: int | str,
        *,
        quarantined: bool = True,
        reason: str = "",
        actor: str = "",
    ) -> ModelVersion:
        """Quarantine a version by hand, or release one (``quarantined=False``); both need a
        reason, are audited and need the admin role."""
        require(Action.ADMIN, model)
        reason = reason.strip()
        version = self.get_version(model, ref)
        if not reason:
            verb = "quarantining" if quarantined else "releasing"
            raise InvalidArgument(
                f"{verb} version {version.number} of '{model}' needs a reason (who reviewed "
                "its files, and what they found)"
            )
        with self._audit(actor) as record:
            changed = self._record_quarantine(record, version, quarantined, reason, actor)
        return changed

    def _record_quarantine(
        self,
        record: Recorder,
        version: ModelVersion,
        quarantined: bool,
        reason: str,
        actor: str,
    ) -> ModelVersion:
        changed = self.store.set_quarantine(
            version.model, version.number, quarantined, actor, reason, self._clock()
        )
        record(
            "version.quarantine" if quarantined else "version.release",
            f"model:{version.model}/version:{version.number}",
            {"quarantined": version.quarantined},
            {"quarantined": quarantined, "reason": reason},
        )
        return changed

    def quarantine_history(self, model: str, ref: int | str) -> list[QuarantineEvent]:
        """Every quarantine and release of a version, newest first."""
        require(Action.READ, model)
        version = self.get_version(model, ref)
        return self.store.quarantine_history(model, version.number)

    def check_servable(self, version: ModelVersion) -> None:
        """``VersionQuarantined`` (naming the findings and the release command) when the
        version may be neither served nor downloaded."""
        require(Action.READ, version.model)
        if not version.quarantined:
            return
        scan = version.scan or {}
        if scan.get("safe") is False and scan.get("summary"):
            summary = str(scan["summary"])
        else:
            history = self.store.quarantine_history(version.model, version.number)
            last = next((e for e in history if e.action == "quarantine"), None)
            summary = f"quarantined by {last.actor or 'an admin'}: {last.reason}" if last else ""
        raise VersionQuarantined(version.model, version.number, summary)
