"""The JSON form of entities, shared by the REST API and the SDK."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any


def jsonable(obj: Any) -> Any:
    """Entities (dataclasses), enums and datetimes as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def from_jsonable(kind: Any, data: Any) -> Any:
    """Rebuild a value of type ``kind`` (entities, their containers) from its JSON form.

    The inverse of ``jsonable`` for the registry's own types: dataclasses, ``list[T]``,
    ``dict[str, T]``, ``T | None``, enums, datetimes and plain scalars.
    """
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        return [from_jsonable(item, v) for v in data]
    if origin is dict:
        _, item = typing.get_args(kind)
        return {k: from_jsonable(item, v) for k, v in data.items()}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return from_jsonable(options[0], data) if len(options) == 1 else data
    if isinstance(origin, type) and dataclasses.is_dataclass(origin):  # e.g. Page[Model]
        generic: Any = origin
        hints = _hints(generic, typing.get_args(kind))
        return generic(**{k: from_jsonable(hints[k], v) for k, v in data.items() if k in hints})
    if isinstance(kind, type):
        if dataclasses.is_dataclass(kind):
            hints = _hints(kind, ())
            return kind(**{k: from_jsonable(hints[k], v) for k, v in data.items() if k in hints})
        if issubclass(kind, Enum):
            return kind(data)
        if kind is datetime:
            return datetime.fromisoformat(data)
        if kind is float:
            return float(data)
    return data


@functools.cache
def _hints(cls: type, args: tuple[Any, ...]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    params = getattr(cls, "__parameters__", ())
    if args and params:
        bound = dict(zip(params, args, strict=True))
        hints = {k: _substitute(v, bound) for k, v in hints.items()}
    return hints


def _substitute(hint: Any, bound: dict[Any, Any]) -> Any:
    if hint in bound:
        return bound[hint]
    args = typing.get_args(hint)
    if not args:
        return hint
    origin = typing.get_origin(hint)
    new_args = tuple(_substitute(a, bound) for a in args)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[new_args]  # noqa: UP007
    return origin[new_args]
