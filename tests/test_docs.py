"""The documentation stays true: every setting, command and route is documented, links resolve."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from corral.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
# [text](target) — the target up to a space, ')' or '#'.
LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s#]*)(?:#[^)\s]*)?(?:\s[^)]*)?\)")
PATH_CONVERTER_RE = re.compile(r"\{(\w+):\w+\}")


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Every leaf command of a click tree as 'noun verb' (typer's click or its vendored one)."""
    children = getattr(command, "commands", None)
    if children is None:
        yield " ".join(path)
        return
    for name, child in sorted(children.items()):
        yield from _command_paths(child, (*path, name))


def _route_paths(routes: list[Any]) -> Iterator[str]:
    """Paths of an app's routes, descending into routers FastAPI keeps unflattened."""
    for route in routes:
        path = getattr(route, "path", None)
        if path is not None:
            yield path
        included = getattr(route, "original_router", None)
        if included is not None:
            prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            yield from (prefix + p for p in _route_paths(included.routes))


def test_every_setting_is_documented_by_its_env_var() -> None:
    text = _read("configuration.md")
    missing = [
        f"CORRAL_{name.upper()}"
        for name in Settings.model_fields
        if f"CORRAL_{name.upper()}" not in text
    ]
    assert not missing, f"docs/configuration.md does not document {missing}"


def test_every_cli_command_is_documented() -> None:
    from corral.cli.main import app

    text = _read("cli.md")
    commands = list(_command_paths(typer.main.get_command(app)))
    assert "alias rollback" in commands  # the walk reached the nested commands
    missing = [path for path in commands if f"corral {path}" not in text]
    assert not missing, f"docs/cli.md does not document {missing}"


def test_every_rest_route_is_documented(tmp_path: Path) -> None:
    from corral.api.app import create_app

    app = create_app(Settings(home=tmp_path))
    try:
        paths = sorted(
            {
                PATH_CONVERTER_RE.sub(r"{\1}", path)
                for path in _route_paths(list(app.routes))
                if path.startswith(("/api/v1", "/v2", "/metrics"))
            }
        )
    finally:
        app.state.corral.close()
    assert "/api/v1/models/{name}/aliases/{alias}/rollback" in paths
    assert "/v2/models/{name}/versions/{version}/infer" in paths
    text = _read("rest.md")
    missing = [path for path in paths if path not in text]
    assert not missing, f"docs/rest.md does not document {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_at_existing_files(page: Path) -> None:
    broken = []
    for target in LINK_RE.findall(page.read_text(encoding="utf-8")):
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):  # anchors, URLs, mailto:
            continue
        if not (page.parent / target).exists():
            broken.append(target)
    assert not broken, f"{page.name} links to missing files: {broken}"
