"""Rollback: where an alias pointed before its current target, replayed from its history."""

from __future__ import annotations

from collections.abc import Iterable

from corral.registry.entities import AliasAction, AliasEvent

Target = tuple[int, str | None, int | None]


def rollback_target(events_oldest_first: Iterable[AliasEvent]) -> Target | None:
    """The target a rollback restores, or None when there is nothing to go back to.

    Each set pushes the target it replaced; each rollback pops one, so repeated
    rollbacks walk back through the alias's history instead of toggling.
    """
    stack: list[Target] = []
    current: Target | None = None
    for event in events_oldest_first:
        if event.action is AliasAction.ROLLBACK:
            if stack:
                stack.pop()
        elif current is not None:
            stack.append(current)
        if event.to_version is None:
            current = None
        else:
            current = (event.to_version, event.to_config, event.to_config_revision)
    return stack[-1] if stack else None
