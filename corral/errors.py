"""Corral's error tree.

Every error Corral raises on purpose is a ``CorralError`` with a stable ``code``::

    CorralError                 code "corral_error"
    ├── NotFound                code "not_found"
    ├── AlreadyExists           code "already_exists"
    ├── InvalidArgument         code "invalid_argument"
    ├── Conflict                code "conflict"
    ├── IntegrityError          code "integrity_error"   (stored bytes do not match digests)
    ├── Unauthenticated         code "unauthenticated"
    ├── PermissionDenied        code "permission_denied"
    └── Unavailable             code "unavailable"

Domain errors know no HTTP; ``corral.api.errors`` maps codes to statuses and
``corral.client`` re-raises the same class from the code.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "Conflict",
    "CorralError",
    "IntegrityError",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Unauthenticated",
    "Unavailable",
    "error_class_for_code",
]


class CorralError(Exception):
    """Base of every error Corral raises on purpose."""

    code = "corral_error"
    title = "Corral error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CorralError):
    code = "not_found"
    title = "Not found"


class AlreadyExists(CorralError):
    code = "already_exists"
    title = "Already exists"


class InvalidArgument(CorralError):
    code = "invalid_argument"
    title = "Invalid argument"


class Conflict(CorralError):
    code = "conflict"
    title = "Conflict"


class IntegrityError(CorralError):
    code = "integrity_error"
    title = "Stored data failed verification"


class Unauthenticated(CorralError):
    code = "unauthenticated"
    title = "Unauthenticated"


class PermissionDenied(CorralError):
    code = "permission_denied"
    title = "Permission denied"


class Unavailable(CorralError):
    code = "unavailable"
    title = "Unavailable"


_BY_CODE: dict[str, type[CorralError]] = {
    cls.code: cls
    for cls in (
        CorralError,
        NotFound,
        AlreadyExists,
        InvalidArgument,
        Conflict,
        IntegrityError,
        Unauthenticated,
        PermissionDenied,
        Unavailable,
    )
}


# A request the HTTP layer could not parse (422) is an invalid argument to the SDK too.
_BY_CODE["invalid_request"] = InvalidArgument
# Serving's refinements of an invalid argument (inputs that miss the signature, over a limit).
_BY_CODE["invalid_input"] = InvalidArgument
_BY_CODE["too_large"] = InvalidArgument
# A version whose signature fails (corral.registry.errors.SignatureInvalid) is an integrity error.
_BY_CODE["signature_invalid"] = IntegrityError
# A quarantined version (corral.registry.errors.VersionQuarantined) is a refused permission.
_BY_CODE["quarantined"] = PermissionDenied
# Over a rate limit or a quota (429): try again later, as with any unavailable server.
_BY_CODE["rate_limited"] = Unavailable


def error_class_for_code(code: str) -> type[CorralError]:
    """The error class for a stable code; ``CorralError`` for an unknown one."""
    return _BY_CODE.get(code, CorralError)
