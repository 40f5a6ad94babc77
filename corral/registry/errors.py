"""The registry's errors; each names the thing it could not find or accept."""

from __future__ import annotations

from corral.errors import AlreadyExists, Conflict, IntegrityError, NotFound, PermissionDenied


class ModelNotFound(NotFound):
    def __init__(self, model: str) -> None:
        super().__init__(f"model '{model}' does not exist")
        self.model = model


class ModelAlreadyExists(AlreadyExists):
    def __init__(self, model: str) -> None:
        super().__init__(f"model '{model}' already exists")
        self.model = model


class VersionNotFound(NotFound):
    def __init__(self, model: str, version: int) -> None:
        super().__init__(f"model '{model}' has no version {version}")
        self.model = model
        self.version = version


class AliasNotFound(NotFound):
    def __init__(self, model: str, alias: str) -> None:
        super().__init__(f"model '{model}' has no alias '{alias}'")
        self.model = model
        self.alias = alias


class ConfigNotFound(NotFound):
    def __init__(self, model: str, config: str, revision: int | None = None) -> None:
        what = f"config '{config}'" if revision is None else f"revision {revision} of '{config}'"
        super().__init__(f"model '{model}' has no {what}")


class ConsumerNotFound(NotFound):
    def __init__(self, consumer: str, model: str) -> None:
        super().__init__(f"consumer '{consumer}' of model '{model}' does not exist")


class ConsumerAlreadyExists(AlreadyExists):
    def __init__(self, consumer: str, model: str) -> None:
        super().__init__(f"consumer '{consumer}' of model '{model}' already exists")


class UploadNotFound(NotFound):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"upload '{upload_id}' does not exist (finished, discarded or expired)")


class AliasMoved(Conflict):
    def __init__(self, model: str, alias: str) -> None:
        super().__init__(
            f"alias '{alias}' of model '{model}' was moved by someone else meanwhile; "
            "read it again and retry"
        )


class FileNotInVersion(NotFound):
    def __init__(self, model: str, version: int, path: str) -> None:
        super().__init__(f"version {version} of model '{model}' has no file '{path[:200]}'")


class SignatureInvalid(IntegrityError):
    """A version whose signature is missing or does not match its files: it is not served."""

    code = "signature_invalid"

    def __init__(self, model: str, version: int, reason: str) -> None:
        super().__init__(f"version {version} of '{model}' failed signature verification: {reason}")
        self.model = model
        self.version = version


class VersionQuarantined(PermissionDenied):
    """A version the scan (or an admin) found unsafe: it is neither served nor downloaded."""

    code = "quarantined"

    def __init__(self, model: str, version: int, summary: str) -> None:
        super().__init__(
            f"version {version} of '{model}' is quarantined: {summary or 'no reason recorded'}. "
            f"An admin who has reviewed its files can release it with `corral version release "
            f'{model} {version} --reason "..."`'
        )
        self.model = model
        self.version = version
