"""Journal records to and from JSON-able dicts, for every store. Core: standard library only.

Stores keep a few key columns for lookups and the rest of a record as one JSON document, so the
SQLite and PostgreSQL stores share this one codec and cannot disagree about a field. Dates and
times are ISO 8601 (times always UTC with an offset), enums their values.
"""

import dataclasses
import functools
import types
import typing

from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar

from rotator.core.model import Change, Kind, TargetKey
from rotator.core.redact import redact


T = TypeVar("T")
#: Free text that may quote an upstream (an error, revoke evidence): redacted on its way into any
#: store, so a credential an upstream echoed never reaches the file. Names and keys are never
#: touched: recovery looks tokens up by their exact name.
FREE_TEXT = frozenset({"error", "last_error", "evidence", "detail"})


def to_json(record: object) -> dict[str, Any]:
    """A record as a JSON-able dict (its ``key`` as the three fields of :class:`TargetKey`)."""
    out: dict[str, Any] = {}
    for name, free_text in _encoding(type(record)):  # type: ignore[arg-type] # a class is hashable
        value = getattr(record, name)
        kind = type(value)
        # Most fields are None, a number or a plain string: settled by their exact type, without
        # the isinstance chain below (a str subclass, an enum, takes the chain, so nothing changes).
        if kind in _AS_IS:
            pass
        elif kind is str:
            if free_text:
                value = redact(value)
        elif isinstance(value, TargetKey):
            value = key_json(value)
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, str) and free_text:
            value = redact(value)
        out[name] = value
    return out


def as_stored(change: Change) -> Change:
    """``change`` as a store of this codec gives its records back: each one encoded and decoded.

    What :meth:`rotator.core.ports.Journal.write` answers, so that a caller keeping the records in
    memory keeps what a read would give (free text redacted, times as decoded), not what it sent.
    """
    rotation, target = change.rotation, change.target
    return Change(
        rotation=from_json(type(rotation), to_json(rotation)) if rotation is not None else None,
        tokens=tuple(from_json(type(t), to_json(t)) for t in change.tokens),
        target=from_json(type(target), to_json(target)) if target is not None else None,
        tombstones=tuple(from_json(type(s), to_json(s)) for s in change.tombstones),
        drop_tombstones=change.drop_tombstones,
    )


def key_json(key: TargetKey) -> dict[str, Any]:
    """A key as JSON; a project key's without ``kind``/``via``, as before kinds (older replicas read it)."""
    data = {field: getattr(key, field) for field in _KEY_FIELDS}
    if key.kind == Kind.PROJECT.value and not key.via:
        del data["kind"], data["via"]
    return data


#: Values JSON holds as they are: no isinstance check of the chain in :func:`to_json` matches them.
_AS_IS = frozenset({type(None), int, bool, float})
#: :class:`TargetKey`'s fields, a string and numbers: as ``dataclasses.asdict`` gave them, uncopied.
_KEY_FIELDS = tuple(field.name for field in dataclasses.fields(TargetKey))


@functools.cache
def _encoding(cls: type) -> tuple[tuple[str, bool], ...]:
    """A record type's fields, each with whether it is free text (:data:`FREE_TEXT`); once per type.

    A rotation writes about a dozen records, and listing a dataclass's fields on each was a
    good part of their encoding.
    """
    return tuple((field.name, field.name in FREE_TEXT) for field in dataclasses.fields(cls))


def from_json(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a record of type ``cls`` from :func:`to_json`'s output; unknown keys are ignored."""
    kwargs: dict[str, Any] = {}
    for name, decode in _fields(cls):  # type: ignore[arg-type] # a class is hashable
        if name in data:
            value = data[name]
            kwargs[name] = value if decode is None else decode(value)
    return cls(**kwargs)


Decode = Callable[[object], object]
#: What a decoding step answers when the value is not of the type it decodes (the next one tries).
_SKIP = object()


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Decode | None], ...]:
    """A record type's fields, each with its decoder (``None``: stored as is).

    Built once per type: a journal read decodes every token of a target, several times per
    rotation, and working out each field's type on each read was most of a read's CPU.
    """
    hints = typing.get_type_hints(cls)
    return tuple((field.name, _decoder(hints[field.name])) for field in dataclasses.fields(cls))


@functools.cache
def _decoder(hint: object) -> Decode | None:
    """The decoder of values stored for ``hint`` (``None`` passes through), or ``None`` if stored as is.

    A union's members are tried in order, as written; a value none of them decodes is kept as is.
    """
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    steps = [step for step in map(_step, options) if step is not None]
    if not steps:
        return None
    if len(steps) == 1:
        only = steps[0]

        def decode_one(value: object) -> object:
            if value is None:
                return None
            out = only(value)
            return value if out is _SKIP else out

        return decode_one

    def decode(value: object) -> object:
        if value is None:
            return None
        for step in steps:
            out = step(value)
            if out is not _SKIP:
                return out
        return value

    return decode


def _step(option: object) -> Decode | None:
    """Decode one member of a hint, or answer ``_SKIP`` for a value it does not take; None: nothing to do."""
    if option is TargetKey:
        return lambda value: TargetKey(**value) if isinstance(value, dict) else _SKIP
    if option is datetime:
        return lambda value: datetime.fromisoformat(value) if isinstance(value, str) else _SKIP
    if option is date:
        return lambda value: date.fromisoformat(value) if isinstance(value, str) else _SKIP
    if isinstance(option, type) and issubclass(option, Enum):
        return option
    if typing.get_origin(option) is tuple:
        return _tuple_step(typing.get_args(option))
    return None


def _tuple_step(args: tuple[object, ...]) -> Decode:
    """A JSON array back to ``tuple[X, ...]`` or ``tuple[X, Y]``, nested tuples included."""
    if len(args) == 2 and args[1] is Ellipsis:  # noqa: PLR2004 - tuple[X, ...]
        item = _decoder(args[0]) or _identity
        return lambda value: tuple(map(item, value)) if isinstance(value, list) else _SKIP
    items = [_decoder(arg) or _identity for arg in args]

    def decode(value: object) -> object:
        if not isinstance(value, list):
            return _SKIP
        if len(items) == len(value):
            return tuple(item(v) for item, v in zip(items, value, strict=True))
        return tuple(value)

    return decode


def _identity(value: object) -> object:
    return value
