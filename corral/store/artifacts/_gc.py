"""Garbage collection of the artifact layout: old staging, unreferenced manifests and blobs.

What stays alive: every staging area younger than the grace period (and the blobs its
finished entries name), every referenced or young manifest (and the blobs it lists), and
every blob younger than the grace period. When a surviving manifest cannot be read, no blob
is removed: deleting bytes a version may need is worse than keeping garbage a while longer.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from datetime import datetime
from typing import Any

from corral.registry.ports import GcReport

logger = logging.getLogger(__name__)

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_MANIFEST_NAME_RE = re.compile(r"([0-9a-f]{64})\.json")


def _mtime(info: dict[str, Any]) -> float | None:
    """Last modification as a POSIX timestamp: ``mtime`` locally, ``LastModified`` on S3."""
    value = info.get("mtime", info.get("LastModified"))
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


def _listing(fs: Any, folder: str, withdirs: bool = False) -> dict[str, dict[str, Any]]:
    try:
        found: dict[str, dict[str, Any]] = fs.find(folder, withdirs=withdirs, detail=True)
    except FileNotFoundError:
        return {}
    return found


def _files(listing: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {path: info for path, info in listing.items() if info.get("type") == "file"}


def _old(info: dict[str, Any], now: float, grace_seconds: float) -> bool:
    mtime = _mtime(info)
    return mtime is not None and now - mtime >= grace_seconds


def collect_garbage(
    fs: Any, root: str, referenced: set[str], grace_seconds: float, now: float
) -> GcReport:
    """Remove what nothing references and is older than ``grace_seconds``; count it."""
    live_blobs: set[str] = set()
    blobs_known = True

    # Staging: an upload's age is that of its newest object (its last activity).
    staging = f"{root}/staging"
    uploads: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for path, info in _listing(fs, staging, withdirs=True).items():
        upload_id = path[len(staging) + 1 :].split("/", 1)[0]
        if upload_id:
            uploads[upload_id][path] = info
    staging_removed = 0
    bytes_freed = 0
    for upload_id, items in uploads.items():
        mtimes = [m for m in (_mtime(info) for info in items.values()) if m is not None]
        if mtimes and now - max(mtimes) >= grace_seconds:
            fs.rm(f"{staging}/{upload_id}", recursive=True)
            staging_removed += 1
            bytes_freed += sum(info.get("size", 0) for info in _files(items).values())
            continue
        entries = [p for p in _files(items) if "/entries/" in p and p.endswith(".json")]
        for data in fs.cat(entries).values() if entries else ():
            live_blobs.add(json.loads(data)["sha256"])

    # Manifests: keep the referenced and the young ones; their files keep blobs alive.
    manifests_removed = 0
    doomed: list[str] = []
    kept: list[str] = []
    manifest_files = _files(_listing(fs, f"{root}/manifests/sha256"))
    for path, info in manifest_files.items():
        match = _MANIFEST_NAME_RE.fullmatch(path.rsplit("/", 1)[-1])
        if match and (match.group(1) in referenced or not _old(info, now, grace_seconds)):
            kept.append(path)
        elif _old(info, now, grace_seconds):  # unreferenced, or a temp file left by a crash
            doomed.append(path)
            bytes_freed += info.get("size", 0)
            manifests_removed += bool(match)
    if doomed:
        fs.rm(doomed)
    present = {path.rsplit("/", 1)[-1].removesuffix(".json") for path in kept}
    for digest in sorted(referenced - present):
        # Its files cannot be listed (nor served) any more; `verify` reports such versions.
        logger.warning("referenced manifest %s is missing", digest)
    for path, data in (fs.cat(kept) if kept else {}).items():
        try:
            live_blobs.update(f["sha256"] for f in json.loads(data)["files"])
        except (ValueError, KeyError, TypeError):
            logger.warning("manifest %s is unreadable; keeping every blob", path)
            blobs_known = False

    # Blobs: only when every surviving manifest could be read.
    blobs_removed = 0
    if blobs_known:
        doomed = []
        for path, info in _files(_listing(fs, f"{root}/blobs/sha256")).items():
            name = path.rsplit("/", 1)[-1]
            if name not in live_blobs and _old(info, now, grace_seconds):
                doomed.append(path)
                bytes_freed += info.get("size", 0)
                blobs_removed += bool(_DIGEST_RE.fullmatch(name))
        if doomed:
            fs.rm(doomed)

    return GcReport(
        staging_removed=staging_removed,
        blobs_removed=blobs_removed,
        manifests_removed=manifests_removed,
        bytes_freed=bytes_freed,
    )
