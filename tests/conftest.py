"""Shared fixtures: each lives in tests/fixtures/ and is registered here."""

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.s3",
    "tests.fixtures.corral",
    "tests.fixtures.browser",
    "tests.fixtures.serving",
]
