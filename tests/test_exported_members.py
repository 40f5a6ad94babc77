"""Each package's public names are pinned: adding or removing one is a decision."""

import importlib

import pytest

EXPECTED = {
    "corral": ["Client", "__version__"],
    "corral.api": ["create_app"],
    "corral.cli": [],
    "corral.client": ["Client"],
    "corral.registry": [
        "Alias", "AliasAction", "AliasEvent", "ArtifactStore", "ConfigRevision", "Consumer",
        "Deprecation", "FileEntry", "Manifest", "Model", "ModelSource", "ModelVersion", "Page",
        "RegistryService", "RegistryStore", "Resolution", "Signature", "VersionStatus",
    ],
    "corral.security": [
        "Finding", "IdentityService", "ScanLimits", "ScanReport", "Verdict", "scan_file",
        "scan_folder",
    ],
    "corral.serving": [
        "FLAVORS", "ArrayPredictor", "BatchPolicy", "Batcher", "Deployment", "Flavor",
        "MissingDependency", "ModelRuntime", "Predictor", "RuntimeStats", "Target",
        "TrafficPolicy", "UnknownFlavor", "UntrustedModel", "VersionFiles", "detect_flavor",
        "get_flavor", "load_predictor", "parse_deployment", "to_matrix",
    ],
    "corral.store": [],
    "corral.store.artifacts": ["FsspecArtifactStore", "manifest_digest"],
    "corral.store.sql": [
        "SqlMonitoringStore", "SqlRegistryStore", "make_engine", "upgrade_database",
    ],
    "corral.web": ["install_pages"],
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_package_exports_exactly_its_pinned_names(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__doc__, f"{package} needs a docstring saying what it owns"
    assert sorted(module.__all__) == sorted(EXPECTED[package])
    for name in module.__all__:
        assert getattr(module, name) is not None
