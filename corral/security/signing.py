"""Signing a version's manifest with an elliptic-curve key and verifying it (OpenSSF model-signing).

What is signed is Corral's manifest itself — every ``(path, sha256)`` of the version — as an
in-toto statement whose subject is ``<model>/<version>``. So a signature belongs to one
version: moved onto another version, or checked against a manifest with a file added, removed,
renamed or changed, it fails. A fetched folder is hashed with model-signing's own hashing,
with its default ignores (``.git*``) turned off and symbolic links refused, and must hold
exactly the signed files. The signature is kept outside the folder (in the artifact store).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import hashing, manifest

# model-signing's public API signs and verifies folders only; signing a manifest we already
# hold (without re-reading the bytes) needs its payload and key classes. Pinned below 1.2.
from model_signing._hashing.hashing import Digest
from model_signing._signing import sign_ec_key, signing
from model_signing._signing import sign_sigstore_pb as bundles

from corral.registry.entities import FileEntry
from corral.registry.errors import SignatureInvalid

__all__ = ["ManifestSigner", "ensure_key"]


def ensure_key(path: Path) -> Path:
    """The private key at ``path``, created (P-256, PEM, mode 0600) when it does not exist."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    try:
        os.link(temporary, path)  # the first process to create it wins
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path


def _subject(model: str, version: int) -> str:
    return f"{model}/{version}"


def _manifest(model: str, version: int, files: Sequence[FileEntry]) -> manifest.Manifest:
    items = [
        manifest.FileManifestItem(
            path=PurePosixPath(entry.path),
            digest=Digest("sha256", bytes.fromhex(entry.sha256)),
        )
        for entry in files
    ]
    serialization_type = manifest._FileSerialization("sha256", allow_symlinks=False)
    return manifest.Manifest(_subject(model, version), items, serialization_type)


def _folder_hashing() -> hashing.Config:
    # Nothing ignored: a `.gitignore` or `.git/x` added to the folder must fail like any file.
    return (
        hashing.Config()  # type: ignore[no-untyped-call]
        .use_file_serialization(hashing_algorithm="sha256", allow_symlinks=False)
        .set_ignored_paths(paths=[], ignore_git_paths=False)
    )


def _listing(found: manifest.Manifest) -> dict[str, str]:
    return {d.identifier: d.digest.digest_hex for d in found.resource_descriptors()}


class ManifestSigner:
    """Signs manifests with one private key; verifies with its public key and trusted others."""

    def __init__(self, private_key: Path | None, public_keys: Sequence[Path] = ()) -> None:
        self.private_key = private_key
        self.public_keys = list(public_keys)
        self._verifiers: list[tuple[str, sign_ec_key.Verifier]] | None = None

    def public_key_pem(self) -> bytes:
        """The PEM public key of the signing key (what other servers list as trusted)."""
        if self.private_key is None:
            raise ValueError("no signing key is configured")
        private = serialization.load_pem_private_key(
            ensure_key(self.private_key).read_bytes(), None
        )
        return private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _trusted(self) -> list[tuple[str, sign_ec_key.Verifier]]:
        if self._verifiers is not None:
            return self._verifiers
        verifiers = [(key.name, sign_ec_key.Verifier(key)) for key in self.public_keys]
        if self.private_key is not None and self.private_key.exists():
            # Derived from the private key each time the process starts: never a stale copy.
            with tempfile.TemporaryDirectory(prefix="corral-key-") as tmp:
                path = Path(tmp) / "signing-key.pub.pem"
                path.write_bytes(self.public_key_pem())
                verifiers.insert(0, (self.private_key.name, sign_ec_key.Verifier(path)))
        if self.private_key is None or self.private_key.exists():
            self._verifiers = verifiers  # else: the key is created by the first signature
        return verifiers

    def sign(self, model: str, version: int, files: Sequence[FileEntry]) -> bytes:
        """The signature bundle (JSON) over a version's manifest."""
        if self.private_key is None:
            raise SignatureInvalid(model, version, "no signing key is configured")
        signer = sign_ec_key.Signer(ensure_key(self.private_key))
        signature = signer.sign(signing.Payload(_manifest(model, version, files)))
        assert isinstance(signature, bundles.Signature)
        return signature.bundle.to_json().encode()

    def verify(
        self,
        model: str,
        version: int,
        files: Sequence[FileEntry],
        bundle: bytes | None,
        folder: Path | None = None,
    ) -> None:
        """Check ``bundle`` signs exactly ``files`` for this version (and ``folder`` holds them).

        Raises ``SignatureInvalid`` saying what failed.
        """
        if bundle is None:
            raise SignatureInvalid(
                model,
                version,
                "it has no signature (registered before signing was enabled?); an admin can "
                f"sign it after checking it: corral version sign {model} {version}",
            )
        signed = self._signed(model, version, bundle)
        if signed.model_name != _subject(model, version):
            raise SignatureInvalid(
                model, version, f"the signature is for '{signed.model_name}', not this version"
            )
        expected = {entry.path: entry.sha256 for entry in files}
        _compare(model, version, "the manifest", expected, _listing(signed))
        if folder is not None:
            try:
                found = _folder_hashing().hash(folder)
            except ValueError as exc:  # a symbolic link, or an unreadable file
                raise SignatureInvalid(
                    model, version, f"its folder cannot be hashed: {exc}"
                ) from exc
            _compare(model, version, f"the folder {folder}", _listing(signed), _listing(found))

    def _signed(self, model: str, version: int, bundle: bytes) -> manifest.Manifest:
        keys = self._trusted()
        if not keys:
            raise SignatureInvalid(
                model, version, "no public key is trusted: set signing_public_keys"
            )
        with tempfile.TemporaryDirectory(prefix="corral-signature-") as tmp:
            path = Path(tmp) / "signature.json"
            path.write_bytes(bundle)
            try:
                signature = bundles.Signature.read(path)
            except Exception as exc:  # any parse failure is a bad signature
                raise SignatureInvalid(model, version, "its signature is malformed") from exc
        failures = []
        for name, verifier in keys:
            try:
                return verifier.verify(signature)
            except Exception as exc:  # model-signing raises ValueError and crypto errors
                failures.append(f"{name}: {str(exc).strip() or type(exc).__name__}")
        raise SignatureInvalid(
            model,
            version,
            "its signature does not verify with any trusted public key ("
            + "; ".join(failures)
            + ")",
        )


def _compare(
    model: str, version: int, what: str, signed: dict[str, str], found: dict[str, str]
) -> None:
    problems = [f"'{p}' is not signed" for p in sorted(found.keys() - signed.keys())]
    problems += [f"'{p}' is missing" for p in sorted(signed.keys() - found.keys())]
    problems += [
        f"'{p}' changed" for p in sorted(signed.keys() & found.keys()) if signed[p] != found[p]
    ]
    if problems:
        raise SignatureInvalid(
            model, version, f"{what} does not match its signature: " + ", ".join(problems)
        )
