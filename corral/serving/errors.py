"""Serving's errors; each names the version, flavor or package it is about."""

from __future__ import annotations

from collections.abc import Iterable

from corral.errors import InvalidArgument, PermissionDenied, Unavailable

SAFE_FLAVORS = "sklearn (skops), onnx, xgboost (JSON/UBJ) or lightgbm (text)"


class UntrustedModel(PermissionDenied):
    """A version would run code Corral cannot vouch for, and nobody marked it trusted."""

    def __init__(self, flavor: str, reason: str) -> None:
        super().__init__(
            f"refusing to load a '{flavor}' model: {reason}; an admin can mark the version "
            f"trusted, or register it in a safe flavor: {SAFE_FLAVORS}"
        )
        self.flavor = flavor


class MissingDependency(Unavailable):
    """A flavor's optional dependency is not installed."""

    def __init__(self, flavor: str, package: str, extra: str) -> None:
        super().__init__(
            f"flavor '{flavor}' needs the '{package}' package, which is not installed: "
            f"pip install 'corral[{extra}]'"
        )
        self.flavor = flavor
        self.package = package
        self.extra = extra


class UnknownFlavor(InvalidArgument):
    def __init__(self, flavor: str, known: Iterable[str]) -> None:
        names = ", ".join(sorted(known))
        super().__init__(f"unknown flavor '{flavor}'; Corral knows: {names}")
        self.flavor = flavor


class InvalidInput(InvalidArgument):
    """A request's inputs do not fit the version's signature (a column, dtype or shape)."""

    code = "invalid_input"
    title = "Invalid input"

    def __init__(self, message: str, field: str = "inputs") -> None:
        super().__init__(message)
        self.field = field


class TooLarge(InvalidArgument):
    """A request is over a limit (body bytes or rows)."""

    code = "too_large"
    title = "Request too large"
