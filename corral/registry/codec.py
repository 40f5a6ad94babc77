"""The JSON form of entities, shared by the REST API and the SDK."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
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
    ``dict[str, T]``, ``T | None``, enums, datetimes and plain scalars. A decoder is built
    once per type, so decoding a page of versions is a few attribute copies per field.
    """
    decode = _decoder(kind)
    return data if decode is None else decode(data)


Decoder = Callable[[Any], Any] | None  # None: the JSON value is already the value


@functools.cache
def _decoder(kind: Any) -> Decoder:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is list:
        item = _decoder(args[0])
        if item is None:
            return None
        return lambda data: None if data is None else [item(v) for v in data]
    if origin is dict:
        value = _decoder(args[1])
        if value is None:
            return None
        return lambda data: None if data is None else {k: value(v) for k, v in data.items()}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _decoder(options[0]) if len(options) == 1 else None
    target = origin if origin is not None else kind
    if isinstance(target, type) and dataclasses.is_dataclass(target):
        return _dataclass_decoder(target, args)
    if isinstance(kind, type):
        if issubclass(kind, Enum):
            return lambda data: None if data is None else kind(data)
        if kind is datetime:
            return lambda data: None if data is None else datetime.fromisoformat(data)
        if kind is float:
            return lambda data: None if data is None else float(data)
    return None


def _dataclass_decoder(cls: Any, args: tuple[Any, ...]) -> Callable[[Any], Any]:
    hints = _hints(cls, args)
    plain = [name for name, hint in hints.items() if _decoder(hint) is None]
    converted = [(name, _decoder(hint)) for name, hint in hints.items() if name not in plain]

    def decode(data: Any) -> Any:
        if data is None:
            return None
        values = {name: data[name] for name in plain if name in data}
        for name, convert in converted:
            if name in data:
                values[name] = convert(data[name])  # type: ignore[misc]
        return cls(**values)

    return decode


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
