"""The one redaction (GitLab tokens of every shape, JWTs, URL userinfo, known values) and its escaping."""

import base64
import re
import string
import unicodedata
import zlib

from hypothesis import assume, given
from hypothesis import strategies as st

from rotator.core.redact import GITLAB_PREFIXES, MARKER, printable, redact
from rotator.testing import start_fakes


B64URL = string.ascii_letters + string.digits + "-_"
BASE36 = string.digits + string.ascii_lowercase
#: What may sit around a secret: any text at all, separators and look-alikes included.
TEXT = st.text(st.one_of(st.characters(), st.sampled_from(list(".-_@:/ \"'<>eyJgl"))), max_size=30)
#: Text holding none of the shapes redaction looks for must come back as it was.
TRIGGER = re.compile(rf"://|eyJ|GR1348941|(?:{'|'.join(GITLAB_PREFIXES)})-")
#: What a terminal acts on rather than shows, and what an upstream might slip into a message.
HOSTILE = list("\x00\x07\x08\t\n\r\x1b\x7f\x85\x9b\xad\u061c\u200e\u200f\u2028\u2029\u202e\u2066\ufeff\ud800")
#: Any text at all: every code point (lone surrogates too) and, often, the hostile ones.
ANY_TEXT = st.text(st.one_of(st.characters(exclude_categories=()), st.sampled_from(HOSTILE)), max_size=40)
#: Unicode categories that must never reach output raw: controls, format (bidi), surrogates,
#: line and paragraph separators.
ESCAPED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ESCAPE = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[ntr])")


def _base36(number: int, width: int) -> str:
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = BASE36[digit] + out
        if not number:
            return out.rjust(width, "0")


@st.composite
def routable(draw: st.DrawFn) -> tuple[str, str]:
    """A routable GitLab token (43 to 316 characters, as GitLab mints them) and its secret part."""
    prefix = draw(st.sampled_from(GITLAB_PREFIXES)) + "-"
    raw = draw(st.binary(min_size=16 + 4, max_size=16 + 160))
    body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    value = f"{prefix}{body}.{_base36(draw(st.integers(1, 99)), 2)}.{_base36(len(body), 2)}"
    return value + _base36(zlib.crc32(value.encode()), 7), body


@st.composite
def legacy(draw: st.DrawFn) -> tuple[str, str]:
    """A legacy token: a documented prefix and 20 or more base64url characters (its secret part)."""
    body = draw(st.text(B64URL, min_size=20, max_size=64))
    return draw(st.sampled_from(GITLAB_PREFIXES)) + "-" + body, body


@st.composite
def jwt(draw: st.DrawFn) -> tuple[str, str]:
    """A JWT (``eyJ`` header, payload, signature, possibly empty) and its payload."""
    parts = [draw(st.text(B64URL, min_size=8, max_size=60)) for _ in range(2)]
    signature = draw(st.text(B64URL, max_size=43))
    return f"eyJ{parts[0]}.{parts[1]}.{signature}", parts[1]


SECRETS = st.one_of(routable(), legacy(), jwt())


@given(before=TEXT, secret=SECRETS, after=TEXT)
def test_no_token_or_jwt_survives_in_any_text(before: str, secret: tuple[str, str], after: str) -> None:
    """A token of any documented shape or a JWT, anywhere in any text, is gone after redaction."""
    value, hidden = secret
    assume(hidden not in before + after)
    out = redact(before + value + after)
    assert value not in out
    assert hidden not in out
    assert MARKER in out


@given(secret=routable())
def test_a_routable_token_goes_whole_with_its_dots(secret: tuple[str, str]) -> None:
    """Nothing of a routable token is left, not even the version and CRC after its dots."""
    value, _ = secret
    assert redact(f"refused {value}.") == f"refused {MARKER}."


@given(
    before=TEXT,
    user=st.text(B64URL, min_size=1, max_size=12),
    password=st.text(B64URL + "!$&()*+,;=%~.:@", min_size=8, max_size=30),
    after=TEXT,
)
def test_url_userinfo_never_survives(before: str, user: str, password: str, after: str) -> None:
    """``scheme://user:password@host`` keeps its scheme and host and loses the user and password."""
    url_rest = f"https://{MARKER}@gitlab.example.com/api"
    assume(password not in f"{before} {url_rest} {after}")
    url = f"https://{user}:{password}@gitlab.example.com/api"
    out = redact(f"{before} {url} {after}")
    assert password not in out
    assert f" {url_rest} " in out


@given(text=ANY_TEXT)
def test_text_without_any_secret_shape_is_only_escaped(text: str) -> None:
    """Text holding no ``://``, ``eyJ``, ``GR1348941`` or ``gl<prefix>-`` comes back only escaped."""
    assume(not TRIGGER.search(text))
    assert redact(text) == printable(text)
    if text.isprintable():
        assert redact(text) == text


def _unescape(shown: str) -> str:
    """The inverse of :func:`printable` for text that held no backslash."""
    return _ESCAPE.sub(lambda m: m.group().encode().decode("unicode_escape"), shown)


@given(text=ANY_TEXT)
def test_printable_leaves_nothing_a_terminal_would_act_on(text: str) -> None:
    """No control, bidi, separator or surrogate character survives, and the result encodes as UTF-8."""
    shown = printable(text)
    assert [c for c in shown if unicodedata.category(c) in ESCAPED] == []
    assert shown.encode() is not None  # a lone surrogate would raise here, as on a UTF-8 stream
    assert printable(shown) == shown  # layers may each apply it: nothing is escaped twice


@given(text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_printable_ascii_is_unchanged(text: str) -> None:
    """Printable ASCII, backslashes and quotes included, comes back exactly as it was."""
    assert printable(text) == text


@given(text=ANY_TEXT.filter(lambda t: "\\" not in t))
def test_printable_keeps_distinct_texts_distinct(text: str) -> None:
    """Each escape reads back to the one character it stands for, so no two texts look the same."""
    assert _unescape(printable(text)) == text


def test_printable_shows_what_was_escaped() -> None:
    """ESC, newline, CR, BEL, C1 CSI and bidi/line separators read as their codes; other text stays."""
    assert (
        printable("a\x1b[2J\nb\r\x07\x9b\u2028\u202e\U000e0001\u00a0c\U00018cd6\ue000")
        == r"a\x1b[2J\nb\r\x07\x9b\u2028\u202e\U000e0001" + "\u00a0c\U00018cd6\ue000"
    )


@given(before=TEXT, value=st.text(min_size=8, max_size=40), after=TEXT)
def test_known_values_are_removed_whatever_their_shape(before: str, value: str, after: str) -> None:
    """A value the caller knows (a live token, a custom-prefixed one) is removed literally."""
    assume(value not in before + after)
    assert value not in redact(before + value + after, [value])


def test_the_fakes_mint_routable_tokens_unless_told_legacy() -> None:
    """The fake GitLab mints GitLab's routable format by default; ``legacy_tokens`` keeps 20 chars."""
    routable_shape = re.compile(r"glpat-[A-Za-z0-9_-]{27,}\.01\.[0-9a-z]{9}")
    with start_fakes() as fakes:
        value = fakes.gitlab.test_only_token(fakes.seed.adopt_token_ids[0]).value
        assert routable_shape.fullmatch(value)
        assert redact(f"echo {value} back") == f"echo {MARKER} back"
    with start_fakes(legacy_tokens=True) as fakes:
        value = fakes.gitlab.test_only_token(fakes.seed.adopt_token_ids[0]).value
        assert re.fullmatch(r"glpat-[A-Za-z0-9_-]{20}", value)
