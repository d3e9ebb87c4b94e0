"""The one redaction: GitLab tokens (routable, legacy, every prefix), JWTs, URL userinfo, known values."""

import base64
import re
import string
import zlib

from hypothesis import assume, given
from hypothesis import strategies as st

from rotator.redact import GITLAB_PREFIXES, MARKER, redact
from rotator.testing import start_fakes


B64URL = string.ascii_letters + string.digits + "-_"
BASE36 = string.digits + string.ascii_lowercase
#: What may sit around a secret: any text at all, separators and look-alikes included.
TEXT = st.text(st.one_of(st.characters(), st.sampled_from(list(".-_@:/ \"'<>eyJgl"))), max_size=30)
#: Text holding none of the shapes redaction looks for must come back as it was.
TRIGGER = re.compile(rf"://|eyJ|GR1348941|(?:{'|'.join(GITLAB_PREFIXES)})-")


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


@given(text=st.text())
def test_text_without_any_secret_shape_is_unchanged(text: str) -> None:
    """Text holding no ``://``, ``eyJ``, ``GR1348941`` or ``gl<prefix>-`` comes back unchanged."""
    assume(not TRIGGER.search(text))
    assert redact(text) == text


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
