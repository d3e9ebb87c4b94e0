"""Journal records to and from JSON-able dicts, for every store. Core: standard library only.

Stores keep a few key columns for lookups and the rest of a record as one JSON document, so the
SQLite and PostgreSQL stores share this one codec and cannot disagree about a field. Dates and
times are ISO 8601 (times always UTC with an offset), enums their values.
"""

import dataclasses
import functools
import types
import typing

from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar

from rotator.core.model import TargetKey
from rotator.core.redact import redact


T = TypeVar("T")
#: Free text that may quote an upstream (an error, revoke evidence): redacted on its way into any
#: store, so a credential an upstream echoed never reaches the file. Names and keys are never
#: touched: recovery looks tokens up by their exact name.
FREE_TEXT = frozenset({"error", "last_error", "evidence", "detail"})


def to_json(record: object) -> dict[str, Any]:
    """A record as a JSON-able dict (its ``key`` as the three fields of :class:`TargetKey`)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(record):  # type: ignore[arg-type]
        value = getattr(record, field.name)
        if isinstance(value, TargetKey):
            value = dataclasses.asdict(value)
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, str) and field.name in FREE_TEXT:
            value = redact(value)
        out[field.name] = value
    return out


def from_json(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a record of type ``cls`` from :func:`to_json`'s output; unknown keys are ignored."""
    hints = _hints(cls)  # type: ignore[arg-type] # a class is hashable
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in data:
            kwargs[field.name] = _decode(hints[field.name], data[field.name])
    return cls(**kwargs)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A record type's resolved field types (resolving them is most of the cost of a read)."""
    return typing.get_type_hints(cls)


def _decode(hint: object, value: object) -> object:  # noqa: PLR0911 - one return per stored type
    if value is None:
        return None
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is TargetKey and isinstance(value, dict):
            return TargetKey(**value)
        if option is datetime and isinstance(value, str):
            return datetime.fromisoformat(value)
        if option is date and isinstance(value, str):
            return date.fromisoformat(value)
        if isinstance(option, type) and issubclass(option, Enum):
            return option(value)
        if typing.get_origin(option) is tuple and isinstance(value, list):
            return _decode_tuple(typing.get_args(option), value)
    return value


def _decode_tuple(args: tuple[object, ...], value: list[object]) -> tuple[object, ...]:
    """A JSON array back to ``tuple[X, ...]`` or ``tuple[X, Y]``, nested tuples included."""
    if len(args) == 2 and args[1] is Ellipsis:  # noqa: PLR2004 - tuple[X, ...]
        return tuple(_decode(args[0], item) for item in value)
    if len(args) == len(value):
        return tuple(_decode(arg, item) for arg, item in zip(args, value, strict=True))
    return tuple(value)
