"""The one place that decides what a secret looks like in text, and the one marker that replaces it.

Core: standard library only, so every layer may use it (adapters on upstream messages, the log
scrubber, the webhook, ``status``/``history``, the HTTP API, the journal's free-text fields).

:func:`redact` replaces, with :data:`MARKER`:

* each ``known`` value, literally, whatever its shape (a live token, the manager token);
* GitLab tokens by their documented prefixes (``glpat-``, ``gldt-``, ``glrt-``, ``gloas-``, …),
  whole: the legacy ``glpat-`` + 20 characters and the routable format
  ``glpat-<base64url payload>.<version>.<length+crc>``, dots included (the match runs through
  every dot that is followed by more token characters, so no part of a routable token is left);
* JWTs (Infisical's access tokens): ``eyJ`` and at least two dot-separated base64url parts;
* the userinfo of any URL: ``https://user:secret@host`` becomes ``https://[REDACTED]@host``.

It errs on the side of hiding: a word that merely starts like a token (``glft-based``) is
replaced too. Text holding none of ``gl<prefix>-``, ``GR1348941``, ``eyJ`` and ``://…@`` comes
back unchanged.
"""

import re

from collections.abc import Collection, Iterable, Mapping


MARKER = "[REDACTED]"
#: A shorter "known value" is no credential, and replacing it would shred ordinary text.
MIN_KNOWN = 8
#: GitLab's documented token prefixes (docs: security/tokens, "Token prefixes"), without the dash.
GITLAB_PREFIXES = (
    "glpat", "gldt", "glptt", "glrtr", "glrt", "gloas", "glcbt", "glft", "glimt", "glagent",
    "glsoat", "glffct", "glwt",
)  # fmt: skip
_CHARS = r"[A-Za-z0-9_-]"
# A dotted run of token characters: once a match is inside a token it cannot stop before its end.
_TAIL = rf"{_CHARS}+(?:\.{_CHARS}+)*"
_PATTERN = re.compile(
    # userinfo: up to the last @ before a space or quote (a typed password may hold @ or / too)
    rf"(?P<url>://)[^\s\"'<>]*@"
    rf"|(?:{'|'.join(GITLAB_PREFIXES)})-{_TAIL}"
    rf"|GR1348941{_TAIL}"  # runner registration tokens (deprecated, still issued)
    rf"|eyJ{_CHARS}+\.{_CHARS}+\.{_CHARS}*(?:\.{_CHARS}+)*"
)


def _replace(found: re.Match[str]) -> str:
    return f"://{MARKER}@" if found.group("url") else MARKER


def redact(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with ``known`` values and anything token- or credential-shaped replaced by the marker."""
    for value in known:
        if len(value) >= MIN_KNOWN:
            text = text.replace(value, MARKER)
    return _PATTERN.sub(_replace, text)


def redact_tree(value: object, known: Iterable[str] = (), keep: Collection[str] = ()) -> object:
    """:func:`redact` applied to every string in a JSON-like value (dicts, lists, tuples).

    Values under the mapping keys in ``keep`` are left as they are (a target's configured name,
    which callers look rows up by).
    """
    known = tuple(known)
    if isinstance(value, str):
        return redact(value, known)
    if isinstance(value, Mapping):
        return {k: v if k in keep else redact_tree(v, known, keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(inner, known, keep) for inner in value]
    return value
