"""The content-addressed artifact store, on a local folder and on an S3-compatible server."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import fsspec.core
import psutil
import pytest

from corral.errors import IntegrityError, InvalidArgument, NotFound
from corral.registry.entities import FileEntry
from corral.registry.errors import UploadNotFound
from corral.store import artifacts
from corral.store.artifacts import FsspecArtifactStore, manifest_digest

MiB = 1024 * 1024


class Raw:
    """Direct access to the bytes under a store's root, to inspect or damage them."""

    def __init__(self, store: FsspecArtifactStore, options: dict[str, Any]) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(store.url, **options)
        self.root = self.root.rstrip("/")

    def files(self, folder: str) -> list[str]:
        self.fs.invalidate_cache()
        try:
            return sorted(self.fs.find(f"{self.root}/{folder}"))
        except FileNotFoundError:
            return []

    def blob(self, digest: str) -> str:
        return f"{self.root}/blobs/sha256/{digest[:2]}/{digest}"

    def manifest(self, digest: str) -> str:
        return f"{self.root}/manifests/sha256/{digest}.json"


@pytest.fixture
def raw(artifact_store: FsspecArtifactStore, request: pytest.FixtureRequest) -> Raw:
    if artifact_store.url.startswith("s3://"):
        _, options = request.getfixturevalue("s3_artifact_url")
        return Raw(artifact_store, {**options, "use_listings_cache": False})
    return Raw(artifact_store, {})


def upload(
    store: FsspecArtifactStore, files: dict[str, bytes], chunk_size: int = 7
) -> tuple[str, list[FileEntry]]:
    upload_id = store.begin_upload()
    for path, data in files.items():
        writer = store.open_writer(upload_id, path, max_bytes=len(data))
        for start in range(0, len(data), chunk_size):
            writer.write(data[start : start + chunk_size])
        writer.close()
    return upload_id, store.upload_entries(upload_id)


def read_all(store: FsspecArtifactStore, entry: FileEntry) -> bytes:
    return b"".join(store.read_file(entry))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_exports_are_pinned() -> None:
    assert artifacts.__all__ == ["FsspecArtifactStore", "manifest_digest"]


def test_constructor_does_no_io(tmp_path: Path) -> None:
    FsspecArtifactStore(str(tmp_path / "nowhere"))
    FsspecArtifactStore("s3://no-such-bucket/x", {"endpoint_url": "http://127.0.0.1:9"})
    assert not (tmp_path / "nowhere").exists()


def test_round_trip_publishes_files_and_manifest(artifact_store: FsspecArtifactStore) -> None:
    files = {"model.skops": b"weights" * 1000, "conf/params.json": b'{"a": 1}', "empty": b""}
    upload_id, entries = upload(artifact_store, files)

    assert [e.path for e in entries] == ["conf/params.json", "empty", "model.skops"]
    assert {e.path: (e.size, e.sha256) for e in entries} == {
        p: (len(d), sha(d)) for p, d in files.items()
    }
    manifest = artifact_store.put_manifest(entries)
    artifact_store.discard_upload(upload_id)

    assert artifact_store.get_manifest(manifest.digest) == manifest
    assert manifest.total_size == sum(len(d) for d in files.values())
    for entry in manifest.files:
        assert read_all(artifact_store, entry) == files[entry.path]
    assert artifact_store.verify(manifest) == []
    with pytest.raises(UploadNotFound, match=upload_id):
        artifact_store.upload_entries(upload_id)


def test_local_path_points_at_the_blob_only_for_local_stores(
    artifact_store: FsspecArtifactStore,
) -> None:
    _, [entry] = upload(artifact_store, {"m.bin": b"abc"})
    local = artifact_store.local_path(entry)
    if artifact_store.url.startswith("s3://"):
        assert local is None
    else:
        assert local is not None
        assert Path(local).read_bytes() == b"abc"


def test_identical_files_are_stored_once(artifact_store: FsspecArtifactStore, raw: Raw) -> None:
    upload(artifact_store, {"a.bin": b"same bytes", "b/a.bin": b"same bytes"})
    upload(artifact_store, {"c.bin": b"same bytes", "d.bin": b"other bytes"})

    assert raw.files("blobs") == sorted(
        [raw.blob(sha(b"same bytes")), raw.blob(sha(b"other bytes"))]
    )


def test_writing_a_path_twice_keeps_the_last(artifact_store: FsspecArtifactStore) -> None:
    upload_id, _ = upload(artifact_store, {"model.bin": b"first"})
    writer = artifact_store.open_writer(upload_id, "model.bin", max_bytes=100)
    writer.write(b"second")
    writer.close()

    assert artifact_store.upload_entries(upload_id) == [FileEntry("model.bin", 6, sha(b"second"))]


def test_manifest_digest_is_canonical_and_order_independent(
    artifact_store: FsspecArtifactStore, raw: Raw
) -> None:
    _, entries = upload(artifact_store, {"b.txt": b"b", "a.txt": b"a"})
    a, b = sha(b"a"), sha(b"b")
    canonical = (
        f'{{"files":[{{"path":"a.txt","sha256":"{a}","size":1}},'
        f'{{"path":"b.txt","sha256":"{b}","size":1}}]}}'
    ).encode()

    manifest = artifact_store.put_manifest(list(reversed(entries)))

    assert manifest.digest == manifest_digest(entries) == manifest_digest(entries[::-1])
    assert manifest.digest == sha(canonical)
    assert raw.fs.cat_file(raw.manifest(manifest.digest)) == canonical
    assert artifact_store.put_manifest(entries).digest == manifest.digest


def test_put_manifest_refuses_files_not_in_the_store(artifact_store: FsspecArtifactStore) -> None:
    _, entries = upload(artifact_store, {"a.txt": b"a"})
    ghost = FileEntry("ghost.bin", 3, sha(b"boo"))

    with pytest.raises(IntegrityError, match=rf"'ghost.bin'.*{ghost.sha256}"):
        artifact_store.put_manifest([*entries, ghost])
    with pytest.raises(InvalidArgument, match="twice"):
        artifact_store.put_manifest(entries + entries)
    with pytest.raises(InvalidArgument, match="sha256"):
        artifact_store.put_manifest([FileEntry("x", 1, "../../etc/passwd")])


def test_corrupted_blob_is_detected_on_read_and_verify(
    artifact_store: FsspecArtifactStore, raw: Raw
) -> None:
    data = b"precious weights " * 100_000
    _, [entry] = upload(artifact_store, {"model.skops": data}, chunk_size=MiB)
    manifest = artifact_store.put_manifest([entry])
    damaged = bytearray(data)
    damaged[1234] ^= 0xFF
    raw.fs.pipe_file(raw.blob(entry.sha256), bytes(damaged))

    with pytest.raises(
        IntegrityError, match=rf"'model.skops' is corrupted: expected sha256 {entry.sha256}"
    ):
        read_all(artifact_store, entry)
    [problem] = artifact_store.verify(manifest)
    assert "'model.skops'" in problem
    assert entry.sha256 in problem


def test_truncated_and_missing_blobs_are_reported(
    artifact_store: FsspecArtifactStore, raw: Raw
) -> None:
    _, entries = upload(artifact_store, {"a.bin": b"aaaa", "b.bin": b"bbbb", "c.bin": b"cccc"})
    manifest = artifact_store.put_manifest(entries)
    a, b, _ = manifest.files
    raw.fs.pipe_file(raw.blob(a.sha256), b"aa")
    raw.fs.rm_file(raw.blob(b.sha256))

    problems = artifact_store.verify(manifest)

    assert len(problems) == 2
    assert "'a.bin'" in problems[0]
    assert a.sha256 in problems[0]
    assert "'b.bin' is missing" in problems[1]
    assert b.sha256 in problems[1]
    with pytest.raises(IntegrityError, match=rf"'a.bin' is corrupted.*{a.sha256}"):
        read_all(artifact_store, a)
    with pytest.raises(IntegrityError, match=rf"'b.bin' is missing.*{b.sha256}"):
        read_all(artifact_store, b)


def test_swapped_manifest_is_refused(artifact_store: FsspecArtifactStore, raw: Raw) -> None:
    _, first = upload(artifact_store, {"a.bin": b"one"})
    _, second = upload(artifact_store, {"a.bin": b"two"})
    one = artifact_store.put_manifest(first)
    two = artifact_store.put_manifest(second)
    raw.fs.pipe_file(raw.manifest(one.digest), raw.fs.cat_file(raw.manifest(two.digest)))

    with pytest.raises(
        IntegrityError,
        match=f"manifest {one.digest} is corrupted: stored bytes hash to {two.digest}",
    ):
        artifact_store.get_manifest(one.digest)
    assert artifact_store.get_manifest(two.digest) == two
    with pytest.raises(NotFound, match="0" * 64):
        artifact_store.get_manifest("0" * 64)
    with pytest.raises(InvalidArgument):
        artifact_store.get_manifest("../escape")


def test_upload_over_max_bytes_is_refused_and_leaves_nothing(
    artifact_store: FsspecArtifactStore, raw: Raw
) -> None:
    upload_id = artifact_store.begin_upload()
    writer = artifact_store.open_writer(upload_id, "huge.bin", max_bytes=10 * MiB)
    for _ in range(10):
        writer.write(b"x" * MiB)

    with pytest.raises(InvalidArgument, match=r"'huge.bin'.*10485760 bytes"):
        writer.write(b"x")

    writer.abort()  # already aborted: a no-op
    assert artifact_store.upload_entries(upload_id) == []
    assert raw.files("blobs") == []
    assert [f for f in raw.files("staging") if f.endswith(".part")] == []


def test_aborted_writer_leaves_no_part(artifact_store: FsspecArtifactStore, raw: Raw) -> None:
    upload_id = artifact_store.begin_upload()
    writer = artifact_store.open_writer(upload_id, "a.bin", max_bytes=100)
    writer.write(b"partial")
    writer.abort()

    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")
    assert artifact_store.upload_entries(upload_id) == []
    assert [f for f in raw.files("staging") if f.endswith(".part")] == []


def test_unknown_uploads_and_bad_paths_are_refused(artifact_store: FsspecArtifactStore) -> None:
    with pytest.raises(UploadNotFound):
        artifact_store.upload_entries("0" * 32)
    with pytest.raises(UploadNotFound):
        artifact_store.open_writer("../../etc", "a.bin", max_bytes=1)
    upload_id = artifact_store.begin_upload()
    with pytest.raises(InvalidArgument, match="inside the version"):
        artifact_store.open_writer(upload_id, "../escape.bin", max_bytes=1)
    artifact_store.discard_upload(upload_id)
    artifact_store.discard_upload(upload_id)  # idempotent
    with pytest.raises(UploadNotFound):
        artifact_store.open_writer(upload_id, "a.bin", max_bytes=1)


def test_gc_keeps_everything_within_the_grace_period(
    artifact_store: FsspecArtifactStore, raw: Raw
) -> None:
    upload_id, entries = upload(artifact_store, {"a.bin": b"orphan"})
    artifact_store.put_manifest(entries)
    before = raw.files("")

    report = artifact_store.gc([], grace_seconds=3600)

    assert report.staging_removed == report.blobs_removed == report.manifests_removed == 0
    assert report.bytes_freed == 0
    assert raw.files("") == before
    assert artifact_store.upload_entries(upload_id) == entries


def test_gc_removes_old_staging_and_unreferenced_data(
    artifact_store: FsspecArtifactStore, raw: Raw
) -> None:
    kept_upload, kept_entries = upload(artifact_store, {"m.bin": b"kept", "shared": b"shared"})
    kept = artifact_store.put_manifest(kept_entries)
    artifact_store.discard_upload(kept_upload)
    _, dropped_entries = upload(artifact_store, {"m.bin": b"dropped", "shared": b"shared"})
    dropped = artifact_store.put_manifest(dropped_entries)
    stale_upload = artifact_store.begin_upload()
    writer = artifact_store.open_writer(stale_upload, "half.bin", max_bytes=100)
    writer.write(b"half")  # never closed: the process died
    dropped_size = len(raw.fs.cat_file(raw.manifest(dropped.digest))) + len(b"dropped")

    report = artifact_store.gc([kept.digest], grace_seconds=0)

    assert report.staging_removed == 2
    assert report.manifests_removed == 1
    assert report.blobs_removed == 1  # "dropped"; "shared" is still referenced
    assert report.bytes_freed >= dropped_size
    assert raw.files("staging") == []
    assert raw.files("manifests") == [raw.manifest(kept.digest)]
    assert artifact_store.verify(kept) == []
    assert artifact_store.verify(dropped) == [
        f"file 'm.bin' is missing: no blob with sha256 {sha(b'dropped')} in the store"
    ]
    writer.abort()


def test_gc_keeps_blobs_of_uploads_in_progress(tmp_path: Path) -> None:
    store = FsspecArtifactStore(str(tmp_path))
    old_upload, _ = upload(store, {"model.bin": b"weights"})
    store.discard_upload(old_upload)
    blob = store.local_path(FileEntry("model.bin", 7, sha(b"weights")))
    assert blob is not None
    os.utime(blob, (1, 1))  # an old, unreferenced blob...
    upload_id, entries = upload(store, {"again.bin": b"weights"})  # ...that an upload reuses
    os.utime(blob, (1, 1))

    report = store.gc([], grace_seconds=3600)

    assert report.blobs_removed == 0
    assert store.verify(store.put_manifest(entries)) == []
    assert store.upload_entries(upload_id) == entries


@pytest.mark.slow
def test_streamed_200_mb_write_keeps_memory_flat(artifact_store: FsspecArtifactStore) -> None:
    process = psutil.Process()
    chunk = os.urandom(MiB)
    total = 200 * MiB
    upload_id = artifact_store.begin_upload()
    baseline = process.memory_info().rss
    peak = baseline
    writer = artifact_store.open_writer(upload_id, "big.bin", max_bytes=total)
    expected = hashlib.sha256()
    for i in range(total // MiB):
        block = chunk[i % 256 :] + chunk[: i % 256]  # every MiB different
        expected.update(block)
        writer.write(block)
        peak = max(peak, process.memory_info().rss)
    entry = writer.close()
    peak = max(peak, process.memory_info().rss)
    size = 0
    for block in artifact_store.read_file(entry):
        size += len(block)
        peak = max(peak, process.memory_info().rss)

    assert entry == FileEntry("big.bin", total, expected.hexdigest())
    assert size == total
    grown = (peak - baseline) / MiB
    assert grown < 100, f"RSS grew by {grown:.0f} MiB while streaming 200 MiB"
