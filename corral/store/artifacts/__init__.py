"""Content-addressed artifact bytes on any fsspec URL (a local folder, ``s3://…``).

Owns the layout under the root: ``staging/`` (uploads in progress), ``blobs/sha256/``
(one object per distinct file content) and ``manifests/sha256/`` (canonical JSON listing the
files of a version), plus their verification and garbage collection.
"""

from __future__ import annotations

from corral.store.artifacts.cas import FsspecArtifactStore, manifest_digest

__all__ = ["FsspecArtifactStore", "manifest_digest"]
