"""The one place that decides what upstream text may look like when shown: no secret, no control.

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
back unchanged, apart from the escaping below.

Whatever :func:`redact` returns has also passed :func:`printable`: an upstream (GitLab, Infisical,
a proxy) writes error messages, token, project and connection names, and one of them holding a
newline, a carriage return, an ANSI escape or a bidi override could otherwise forge a second
result line, recolour the operator's terminal or reorder what they read. Every caller that
redacts upstream text before showing it (the rule since the start) therefore escapes it too,
new code included.
"""

import re
import threading
import unicodedata

from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager

from rotator.core.secret import Secret


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


#: Unicode categories shown escaped: controls (C0, DEL, C1), format characters (the bidi controls
#: among them), lone surrogates, and the line and paragraph separators. Unassigned and private-use
#: code points stay: terminals show them as a box, and a script newer than this Python's tables
#: (a project named in it) must not read as escapes.
_ESCAPED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def printable(text: str) -> str:
    r"""``text`` with every control, format or line-separator character written as an escape.

    ``ESC`` becomes ``\x1b``, a newline ``\n``, a C1 CSI ``\x9b``, a right-to-left override
    ``\u202e``, U+2028 ``\u2028``, a lone surrogate (which would fail the write to a UTF-8 stream)
    ``\ud800``: the escapes Python's ``repr`` writes. Nothing is dropped, so the operator sees
    what was sent, and nothing else changes (letters of any script, spaces, emoji).

    Printable text, a backslash included, comes back unchanged, so applying it again changes
    nothing (layers may each apply it), and two different texts without a backslash never come
    out the same (an escape is a backslash plus a fixed-length code).
    """
    if text.isprintable():  # the common case, in C
        return text
    return "".join(repr(char)[1:-1] if unicodedata.category(char) in _ESCAPED else char for char in text)


def _replace(found: re.Match[str]) -> str:
    return f"://{MARKER}@" if found.group("url") else MARKER


def redact(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with ``known`` values and anything token- or credential-shaped replaced by the marker.

    The result is :func:`printable` too: redacting comes first, so a known value is matched as it is.
    """
    for value in known:
        if len(value) >= MIN_KNOWN:
            text = text.replace(value, MARKER)
    return printable(_PATTERN.sub(_replace, text))


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


#: Live token values, while a rotation holds them in memory: every output edge removes them whole.
_live: set[str] = set()
_live_lock = threading.Lock()


@contextmanager
def watch(secret: Secret) -> Iterator[None]:
    """While inside, the scrubber also removes this exact value (whatever its shape) from events."""
    value = secret.reveal()
    with _live_lock:
        _live.add(value)
    try:
        yield
    finally:
        with _live_lock:
            _live.discard(value)


def scrub_text(text: str) -> str:
    """``text`` with live values and token-shaped strings replaced by ``[REDACTED]``, controls escaped."""
    with _live_lock:
        live = list(_live)
    return redact(text, live)


def live_values() -> tuple[str, ...]:
    """The token values :func:`watch` holds right now (for the log scrubber)."""
    with _live_lock:
        return tuple(_live)
