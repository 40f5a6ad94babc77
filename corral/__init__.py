"""Corral: one server for the whole model lifecycle.

``corral.Client`` is the SDK; everything else lives in its own package.
Imports are lazy so that ``import corral`` stays fast in a cold process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Client", "__version__"]
from corral._version import __version__

if TYPE_CHECKING:
    from corral.client import Client


def __getattr__(name: str) -> Any:
    if name == "Client":
        from corral.client import Client

        return Client
    raise AttributeError(f"module 'corral' has no attribute {name!r}")
