"""The HTTP clients' per-call trims: httpx without cookies, URLs parsed once, requests' checks unchanged."""

import http.server
import threading

from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from rotator.adapters import httpclient


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
