"""The HTTP clients' per-call trims: httpx without cookies, URLs parsed once, requests' checks unchanged."""

import collections
import http.server
import io
import threading

from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
import requests
import requests.models
import requests.structures
import requests.utils

from rotator.adapters import httpclient, quick_requests


class _CookieSetter(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a ``Set-Cookie``, and records the ``Cookie`` header each request carried."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        _CookieSetter.seen.append(self.headers.get("Cookie"))
        self.send_response(200)
        self.send_header("Set-Cookie", "session=abc; Path=/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: Any) -> None:  # noqa: ANN401 - http.server's signature
        """Quiet."""


@pytest.fixture
def cookie_server() -> Iterator[str]:
    """A loopback HTTP server that sets a cookie on every answer; its base URL."""
    _CookieSetter.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CookieSetter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_client_keeps_no_cookie_and_sends_none(cookie_server: str) -> None:
    """A cookie an answer sets is neither kept nor sent back on the next request."""
    with httpclient.Client(timeout=5) as client:
        for _ in range(2):
            response = client.get(httpclient.url(cookie_server + "/a"))
            assert response.status_code == 200
            assert response.headers["set-cookie"].startswith("session=")
        assert not client.cookies
        assert list(client.cookies.jar) == []
    assert _CookieSetter.seen == [None, None]


def test_the_client_refuses_cookies_set_on_it() -> None:
    """Setting cookies on the client is refused, not silently dropped."""
    with httpclient.Client(timeout=5) as client, pytest.raises(TypeError, match="no cookies"):
        client.cookies = {"session": "abc"}


def test_a_url_is_parsed_once_and_stays_as_given() -> None:
    """The same URL text gives the same parsed URL, equal to httpx's own parse."""
    text = "https://infisical.example.com/api/v1/app-connections/gitlab/3c90c3cc"
    assert httpclient.url(text) is httpclient.url(text)
    assert httpclient.url(text) == httpx.URL(text)
    assert str(httpclient.url(text)) == text


class _ReadNone(io.BytesIO):
    read = None  # type: ignore[assignment]


class _Attr:
    def __init__(self) -> None:
        self.read = lambda: b""
        self.items = list


class _NoneOnInstance(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.read = None  # type: ignore[assignment,method-assign]


SAMPLES: list[object] = [
    {},
    {"a": 1},
    collections.OrderedDict(a=1),
    requests.structures.CaseInsensitiveDict({"A": "1"}),
    [("a", 1)],
    ("a", 1),
    "text",
    b"bytes",
    None,
    3,
    io.BytesIO(b"x"),
    io.StringIO("x"),
    _ReadNone(),
    _Attr(),
    _NoneOnInstance(),
    object(),
    dict,  # a class, not an instance
]


#: The protocols requests defines, kept by its ``_types`` module whatever replaces its modules' names.
ORIGINAL = vars(requests)["_types"]


def _check(module: object, name: str) -> Any:  # noqa: ANN401 - a class requests' module looks up
    """The class ``module`` (requests' own) now looks ``name`` up as."""
    return getattr(module, name)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_the_quick_checks_answer_as_requests_protocols_do(sample: object) -> None:
    """``isinstance`` against the replaced names gives the runtime protocols' own answer."""
    quick_requests.install()
    assert _check(requests.models, "_SupportsRead") is not ORIGINAL.SupportsRead
    assert isinstance(sample, _check(requests.models, "_SupportsRead")) == isinstance(
        sample, ORIGINAL.SupportsRead
    )
    assert isinstance(sample, _check(requests.utils, "_SupportsItems")) == isinstance(
        sample, ORIGINAL.SupportsItems
    )


def test_install_is_idempotent_and_requests_still_prepares_the_same_request() -> None:
    """Installed twice, requests prepares a request as before: headers merged, query encoded."""
    quick_requests.install()
    first = _check(requests.models, "_SupportsRead")
    quick_requests.install()
    assert _check(requests.models, "_SupportsRead") is first
    session = requests.Session()
    session.headers["X-Session"] = "s"
    request = requests.Request(
        "GET", "http://gitlab.example.com/api/v4/x", params={"page": 2}, headers={"A": "1"}
    )
    prepared = session.prepare_request(request)
    assert prepared.url == "http://gitlab.example.com/api/v4/x?page=2"
    assert prepared.headers["A"] == "1"
    assert prepared.headers["X-Session"] == "s"
    body = requests.Request("POST", "http://gitlab.example.com/", data=io.BytesIO(b"abc")).prepare()
    assert body.headers["Content-Length"] == "3"
