"""Config mistakes in the user's words: an unknown key's nearest known key, pydantic's errors retold.

pydantic words its errors for programmers ("Input should be a valid dictionary or instance of
TokenSpec", "less than or equal to datetime.timedelta(days=1)"); a config's reader wrote YAML.
:func:`retell` rewrites each kind of error pydantic can raise on the config into a sentence about
the value written, with bounds and values as the file spells them (``1d``, ``true``, ``a list``).
An error kind it does not know gets a plain sentence too: pydantic's text never reaches the user.
"""

import difflib

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from pydantic_core import ErrorDetails

from rotator.core.durations import format_duration, human_duration


_LONGEST_QUOTE = 40
#: What a missing key should hold, after "is required".
_MISSING = {
    "gitlab": " (a gitlab: section with the url of your GitLab)",
    "url": ", such as https://gitlab.example.com",
    "targets": " (a list of targets, each starting with '- name: ')",
    "token": " (at least its scopes, such as token: {scopes: [api]})",
    "scopes": ", such as scopes: [api]",
    "name": " (lowercase letters, digits and hyphens, such as app-deploy)",
    "project": ' (a numeric id or a "group/project" path)',
    "connection_id": " (the id of the Infisical GitLab connection, a UUID)",
}
UUID_HINT = "a UUID such as 3c90c3cc-0d44-4b50-8888-8dd25736052a (the Infisical connection's id)"
_BOUNDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}


def unknown_key(key: object, known: Sequence[str], line: int | None) -> str:
    """The problem for ``key`` in a mapping that takes ``known``: the nearest one, else the list."""
    at = f" (line {line})" if line else ""
    if isinstance(key, bool):  # `yes:`/`on:` unquoted: YAML 1.1 reads them as true/false
        return f"unknown key{at}: YAML reads yes, no, on and off unquoted as {describe(key)}"
    close = difflib.get_close_matches(str(key).strip().lower().replace("-", "_"), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key{at}; did you mean {close[0]}?"
    return f"unknown key{at}; the keys here are {', '.join(known)}"


def retell(error: ErrorDetails) -> str:
    """``error`` as a sentence about the value written (bounds as the file writes them)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    field = next((part for part in reversed(error["loc"]) if isinstance(part, str)), "")
    if kind in {"value_error", "assertion_error"} and "error" in ctx:
        return str(ctx["error"])  # our own validators' words, without pydantic's "Value error, "
    if kind in _BARE:  # no value to show: a missing key's "input" is the mapping around it
        return _BARE[kind] + (_MISSING.get(field, "") if kind == "missing" else "")
    sentence = _sentence(kind, field, ctx)
    if error["input"] in ("", None):  # "must not be empty, not empty text" says it twice
        return sentence
    if kind in _MAPPING_KINDS:
        # Never quoted: text where a section belongs is often what the operator meant to put in it,
        # a credential among them (state: postgresql://user:password@..., notify: <webhook URL>).
        return f"{sentence}, not {describe(error['input'], secret=True)}{_colon_hint(error['input'])}"
    return f"{sentence}, not {describe(error['input'])}"


_BARE = {
    "missing": "is required",
    "recursion_loop": "refers to itself (an alias inside its own anchor)",
    "extra_forbidden": "unknown key",
}
_MAPPING_KINDS = ("model_type", "model_attributes_type", "dict_type", "mapping_type")
#: Kinds (by prefix) whose sentence does not depend on the key or the bound.
_FIXED: tuple[tuple[tuple[str, ...], str], ...] = (
    (_MAPPING_KINDS, "must be a mapping (key: value lines, indented under it)"),
    (("tuple_type", "list_type", "iterable_type", "sequence_type"), "must be a list, such as [api]"),
    (("int_", "float_", "finite_number"), "must be a whole number"),
    (("bool_",), "must be true or false"),
    (("uuid_",), f"must be {UUID_HINT}"),
)


#: A list's example, where ``[api]`` (a token's scopes) would mislead.
_LIST_EXAMPLES = {"groups": "[acme, acme/platform]", "projects": "[acme/app, 42]"}


def _sentence(kind: str, field: str, ctx: dict[str, object]) -> str:
    fixed = next((text for prefixes, text in _FIXED if kind.startswith(prefixes)), None)
    if fixed is not None and kind.startswith(_FIXED[1][0]) and field in _LIST_EXAMPLES:
        fixed = f"must be a list, such as {_LIST_EXAMPLES[field]}"
    if fixed is not None:
        return fixed
    if kind in {"too_short", "too_long"}:
        return _length(field, ctx, kind)
    if kind.startswith("string_"):
        return _text(field, ctx, kind)
    if kind == "literal_error":
        role = "a role name or " if field == "access_level" else ""
        return f"must be {role}one of {ctx.get('expected', 'the listed values')}"
    bound = next(((name, value) for name, value in ctx.items() if name in _BOUNDS), None)
    # pydantic gives a bound as text, a timedelta's as its repr; durations are checked by config._within.
    if bound is not None and not str(bound[1]).startswith("datetime."):
        return f"must be {_BOUNDS[bound[0]]} {describe(bound[1], quote=False)}"
    return "is not a value this key takes"


def _length(field: str, ctx: dict[str, object], kind: str) -> str:
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if field == "targets":
        return "must list at least one target"
    return f"must have at least {ctx.get('min_length')} item(s)"


def _text(field: str, ctx: dict[str, object], kind: str) -> str:
    if field == "schedule" and kind == "string_too_short":
        return 'must be a cron expression of 5 fields, such as "0 3 * * 1"'
    if kind == "string_too_short":
        least = ctx.get("min_length")
        return "must not be empty" if least == 1 else f"must be at least {least} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    return "must be text"


def _colon_hint(value: object) -> str:
    """A hint for ``url:x``: without a space after the colon, YAML reads one text, not a key."""
    if isinstance(value, str) and any(":" in word and not word.endswith(":") for word in value.split()):
        return " (a key needs a space after its colon: url: x)"
    return ""


def describe(value: object, *, quote: bool = True, secret: bool = False) -> str:
    """``value`` as the file would show it: ``true``, ``30d``, ``'abc'``, ``a list``.

    ``secret``: text is named as such, never shown (it may be a credential written in the wrong place).
    """
    if secret and isinstance(value, str):
        return "text" if value else "empty text"
    if value is None or isinstance(value, bool | int | float | str | timedelta):
        return _scalar(value, quote=quote)
    if isinstance(value, datetime):  # before date: a datetime is a date
        return "a timestamp"
    if isinstance(value, list | tuple) and not value:
        return "an empty list"
    kinds = {
        date: "a date",
        bytes: "binary data (!!binary)",
        list: "a list",
        tuple: "a list",
        dict: "a mapping",
    }
    return next((name for kind, name in kinds.items() if isinstance(value, kind)), "a value of another kind")


def _scalar(value: object, *, quote: bool) -> str:
    if value is None or isinstance(value, bool):
        return "an empty value" if value is None else str(value).lower()
    if isinstance(value, timedelta):
        spelt = format_duration(value)
        return spelt if len(spelt) <= 5 else human_duration(value)  # noqa: PLR2004 - 4 digits and a unit
    if isinstance(value, str):
        cut = value[:_LONGEST_QUOTE] + ("..." if len(value) > _LONGEST_QUOTE else "")
        return (repr(cut) if quote else cut) if value else "empty text"
    text = str(value)
    return text if len(text) <= _LONGEST_QUOTE else f"a number of {len(text)} characters"
