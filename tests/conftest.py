"""Shared fixtures: each lives in tests/fixtures/ and is registered here."""

import os

# Suites about other features talk to servers without tokens: anonymous callers are admins
# there. The security suites (tests/security, the REST contract modes) build their settings
# with anonymous_role="none" and authenticate for real.
os.environ.setdefault("CORRAL_ANONYMOUS_ROLE", "admin")

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.s3",
    "tests.fixtures.corral",
    "tests.fixtures.browser",
    "tests.fixtures.serving",
    "tests.fixtures.webhooks",
]
