"""The Python SDK: ``corral.Client`` against a server URL or a local Corral home.

Both modes offer the same verbs: the registry service's (``create_model``,
``get_version``, ``set_alias``, ``rollback_alias``, ``create_consumer``,
``resolve_consumer`` …) plus ``register``, ``download`` and ``fetch``.
"""

from corral.client._client import Client

__all__ = ["Client"]
