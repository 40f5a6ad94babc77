"""Signed manifests: a version whose stored record no longer matches its signature is refused
by loading (REST predict), fetching, downloading and ``corral version verify``."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, update

from corral import Client
from corral.config import Settings
from corral.errors import IntegrityError
from corral.registry.entities import FileEntry
from corral.registry.errors import SignatureInvalid
from corral.security.signing import ManifestSigner, ensure_key
from corral.store.artifacts import FsspecArtifactStore
from corral.store.sql.tables import ModelRow, VersionRow
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import example_records, save_classifier, training_data

Files = dict[str, bytes]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with 'clf' versions 1 and 2 (a skops model and a README each), both signed."""
    root = tmp_path_factory.mktemp("signed")
    home = root / "home"
    features, _ = training_data()
    with Client(home=home) as client:
        for number, flip in ((1, False), (2, True)):
            folder = root / f"v{number}"
            save_classifier(folder, flip=flip)
            (folder / "README.md").write_text(f"version {number}\n")
            client.register("clf", folder, flavor="sklearn", example=example_records(features[:3]))
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(template, copy)
    return copy


def _store(home: Path) -> FsspecArtifactStore:
    return FsspecArtifactStore(str(home / "artifacts"))


def _files(home: Path, number: int) -> Files:
    """The stored bytes of a version, read back from the artifact store."""
    with Client(home=home, cache_dir=home.parent / "read-cache") as client:
        version = client.get_version("clf", number)
    store = _store(home)
    return {e.path: b"".join(store.read_file(e)) for e in version.files}


def _point_version(home: Path, number: int, digest: str, files: list[FileEntry]) -> None:
    """Rewrite the version's record (what an attacker with database access would do)."""
    engine = create_engine(f"sqlite:///{home / 'corral.db'}")
    model_id = select(ModelRow.id).where(ModelRow.name == "clf").scalar_subquery()
    with engine.begin() as db:
        db.execute(
            update(VersionRow)
            .where(VersionRow.model_id == model_id, VersionRow.number == number)
            .values(
                manifest_digest=digest,
                files=[{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
            )
        )
    engine.dispose()


def _replace_files(home: Path, files: Files) -> None:
    """Store ``files`` as a consistent manifest and point version 1 at it: every digest
    matches, only the signature can tell."""
    store = _store(home)
    upload = store.begin_upload()
    for path, data in files.items():
        writer = store.open_writer(upload, path, 1 << 30)
        writer.write(data)
        writer.close()
    manifest = store.put_manifest(store.upload_entries(upload))
    _point_version(home, 1, manifest.digest, manifest.files)


def _signature(home: Path, number: int) -> Path:
    return home / "artifacts" / "signatures" / "clf" / f"{number}.sigstore.json"


def _changed_byte(home: Path) -> None:
    files = _files(home, 1)
    data = bytearray(files["model.skops"])
    data[len(data) // 2] ^= 0xFF
    _replace_files(home, {**files, "model.skops": bytes(data)})


def _added(name: str) -> Callable[[Path], None]:
    def tamper(home: Path) -> None:
        _replace_files(home, {**_files(home, 1), name: b"*\n"})

    return tamper


def _removed(home: Path) -> None:
    files = _files(home, 1)
    del files["README.md"]
    _replace_files(home, files)


def _renamed(home: Path) -> None:
    files = _files(home, 1)
    files["README.txt"] = files.pop("README.md")
    _replace_files(home, files)


def _swapped_manifest(home: Path) -> None:
    with Client(home=home, cache_dir=home.parent / "read-cache") as client:
        other = client.get_version("clf", 2)
    _point_version(home, 1, other.manifest_digest, other.files)


def _swapped_signature(home: Path) -> None:
    shutil.copyfile(_signature(home, 2), _signature(home, 1))


def _untrusted_key(home: Path) -> None:
    # The server's key is replaced: what the old key signed is no longer trusted.
    for path in (home / "keys").iterdir():
        path.unlink()
    ensure_key(home / "keys" / "signing-key.pem")


TAMPERS: dict[str, Callable[[Path], None]] = {
    "changed-byte": _changed_byte,
    "added-file": _added("extra.bin"),
    "added-gitignore": _added(".gitignore"),
    "added-git-folder": _added(".git/x"),
    "removed-file": _removed,
    "renamed-file": _renamed,
    "swapped-manifest": _swapped_manifest,
    "swapped-signature": _swapped_signature,
    "untrusted-key": _untrusted_key,
}


def _cli(home: Path, *args: str, server: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRAL_HOME": str(home), "CORRAL_CACHE_DIR": str(home / "cli-cache")}
    env.pop("CORRAL_SERVER_URL", None)
    prefix = ["--server", server] if server else []
    return subprocess.run(
        [sys.executable, "-m", "corral", *prefix, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_signed_version_verifies_loads_and_fetches(home: Path, tmp_path: Path) -> None:
    assert _signature(home, 1).exists()
    with Client(home=home, cache_dir=tmp_path / "cache") as client:
        folder = client.fetch("clf", 1)
        assert sorted(p.name for p in folder.iterdir()) == [
            "README.md",
            "input_example.json",
            "model.skops",
        ]
        client.download("clf", 1, tmp_path / "out")
        assert client.verify_version("clf", 1).files_checked == 3
    done = _cli(home, "version", "verify", "clf", "1")
    assert done.returncode == 0, done.stderr
    with ServerThread(Settings(home=home, cache_dir=tmp_path / "server-cache")) as server:
        inputs = training_data()[0][:2].tolist()
        response = httpx.post(
            f"{server.url}/api/v1/models/clf/predict", json={"inputs": inputs, "version": 1}
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_tampered_version_is_refused_everywhere(tamper: str, home: Path, tmp_path: Path) -> None:
    TAMPERS[tamper](home)
    with Client(home=home, cache_dir=tmp_path / "cache") as client:
        with pytest.raises(SignatureInvalid, match=r"version 1 of 'clf' failed signature"):
            client.fetch("clf", 1)
        with pytest.raises(SignatureInvalid):
            client.download("clf", 1, tmp_path / "out")
        assert not (tmp_path / "out").exists()
        with pytest.raises(SignatureInvalid):
            client.verify_version("clf", 1)
        if tamper != "untrusted-key":
            client.verify_version("clf", 2)  # the other version is untouched
        refusals = client.list_audit(action="version.signature_invalid").items
        assert refusals
        assert refusals[0].target == "model:clf/version:1"
    done = _cli(home, "version", "verify", "clf", "1")
    assert done.returncode != 0
    assert "failed signature verification" in done.stderr
    with ServerThread(Settings(home=home, cache_dir=tmp_path / "server-cache")) as server:
        inputs = training_data()[0][:2].tolist()
        load = httpx.post(
            f"{server.url}/api/v1/models/clf/predict", json={"inputs": inputs, "version": 1}
        )
        assert load.status_code == 409, load.text
        assert load.json()["code"] == "signature_invalid"
        assert "version 1 of 'clf'" in load.json()["detail"]
        verify = httpx.post(f"{server.url}/api/v1/models/clf/versions/1/verify", timeout=60)
        assert verify.status_code == 409
        assert verify.json()["code"] == "signature_invalid"
        with Client(server.url, cache_dir=tmp_path / "remote-cache") as remote:
            with pytest.raises(IntegrityError, match="failed signature verification"):
                remote.fetch("clf", 1)
            with pytest.raises(IntegrityError, match="failed signature verification"):
                remote.download("clf", 1, tmp_path / "remote-out")


def test_unsigned_version_is_refused_until_an_admin_signs_it(home: Path, tmp_path: Path) -> None:
    _signature(home, 1).unlink()
    with (
        Client(home=home, cache_dir=tmp_path / "cache") as client,
        pytest.raises(SignatureInvalid, match="corral version sign clf 1"),
    ):
        client.fetch("clf", 1)
    with ServerThread(Settings(home=home, cache_dir=tmp_path / "server-cache")) as server:
        refused = _cli(home, "version", "verify", "clf", "1", server=server.url)
        assert refused.returncode != 0
        assert "corral version sign clf 1" in refused.stderr
        signed = _cli(home, "version", "sign", "clf", "1", server=server.url)
        assert signed.returncode == 0, signed.stderr
        verified = _cli(home, "version", "verify", "clf", "1", server=server.url)
        assert verified.returncode == 0, verified.stderr
    with Client(home=home, cache_dir=tmp_path / "cache") as client:
        assert client.list_audit(action="version.sign").items


def test_unsigned_version_loads_when_signatures_are_not_required(
    home: Path, tmp_path: Path
) -> None:
    _signature(home, 1).unlink()
    settings = Settings(home=home, cache_dir=tmp_path / "cache", require_signatures=False)
    with Client(settings=settings) as client:
        assert client.fetch("clf", 1).is_dir()


def test_a_retired_key_is_trusted_when_listed_in_signing_public_keys(
    home: Path, tmp_path: Path
) -> None:
    retired = tmp_path / "retired.pub.pem"
    retired.write_bytes(ManifestSigner(home / "keys" / "signing-key.pem").public_key_pem())
    _untrusted_key(home)
    settings = Settings(home=home, cache_dir=tmp_path / "cache", signing_public_keys=[retired])
    (tmp_path / "notes.txt").write_text("new\n")
    with Client(settings=settings) as client:
        client.fetch("clf", 1)
        assert client.register("clf", tmp_path / "notes.txt").number == 3
        client.fetch("clf", 3)  # signed with the new key


def test_the_generated_key_is_private_to_its_owner(tmp_path: Path) -> None:
    key = ensure_key(tmp_path / "keys" / "signing-key.pem")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert ensure_key(key).read_bytes() == key.read_bytes()  # created once, then reused


def _entry(path: str, data: bytes) -> FileEntry:
    return FileEntry(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("extra", [".gitignore", ".git/x", ".github/w.yml", "sub/.gitattributes"])
def test_folder_with_a_file_outside_the_manifest_fails(extra: str, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    files = [_entry("model.bin", b"weights")]
    signer = ManifestSigner(tmp_path / "key.pem")
    bundle = signer.sign("m", 1, files)
    signer.verify("m", 1, files, bundle, folder)
    (folder / extra).parent.mkdir(parents=True, exist_ok=True)
    (folder / extra).write_text("x")
    with pytest.raises(SignatureInvalid, match="is not signed"):
        signer.verify("m", 1, files, bundle, folder)


def test_folder_with_a_symbolic_link_fails(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    files = [_entry("model.bin", b"weights")]
    signer = ManifestSigner(tmp_path / "key.pem")
    bundle = signer.sign("m", 1, files)
    (folder / "link").symlink_to(folder / "model.bin")
    with pytest.raises(SignatureInvalid):
        signer.verify("m", 1, files, bundle, folder)
