"""The fakes read a request's head as http.server does, without the email package on the common path."""

import http.client
import io
import socket
import struct
import time

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.testing import FakeGitLab, Fakes
from rotator.testing._wire import MAX_HEADERS, MAX_LINE, parse_headers, read_header_lines


def _stdlib(block: bytes) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, str]]:
    message = http.client.parse_headers(io.BytesIO(block))
    first = {k.lower(): message.get(k, "") for k in message}
    return list(message.items()), {k.lower(): v for k, v in message.items()}, first


def _ours(block: bytes) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, str]]:
    message, last, first = parse_headers(read_header_lines(io.BytesIO(block)), http.client.HTTPMessage)
    return list(message.items()), last, first


_NAMES = st.sampled_from(["Host", "Content-Type", "PRIVATE-TOKEN", "x-a", "X-A", "Bad Name", "", "From"])
_VALUES = st.text(alphabet=st.sampled_from(list("ab :\t\r\xe9\x7f,;=")), max_size=8)
_ENDS = st.sampled_from(["\r\n", "\n"])
_LINES = st.lists(
    st.one_of(
        st.tuples(_NAMES, st.sampled_from([":", ": ", ":\t", ""]), _VALUES, _ENDS).map("".join),
        st.tuples(st.sampled_from([" ", "\t"]), _VALUES, _ENDS).map("".join),  # a folded line
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(lines=_LINES, end=st.sampled_from(["\r\n", "\n", ""]))
def test_any_header_block_parses_as_http_client_parses_it(lines: list[str], end: str) -> None:
    """Names, values, order, repeats, folds and oddities: the same message, last and first values by name."""
    block = "".join(line for line in lines if line.strip("\r\n")).encode("iso-8859-1") + end.encode()
    assert _ours(block) == _stdlib(block)


def test_the_limits_are_http_clients() -> None:
    """A line past 65,536 bytes and a 101st header raise what http.client raises."""
    long_line = b"X: " + b"a" * MAX_LINE + b"\r\n\r\n"
    many = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n"
    for block, error in ((long_line, http.client.LineTooLong), (many, http.client.HTTPException)):
        with pytest.raises(error) as ours:
            read_header_lines(io.BytesIO(block))
        with pytest.raises(error) as theirs:
            http.client.parse_headers(io.BytesIO(block))
        assert str(ours.value) == str(theirs.value)


def _exchange(url: str, raw: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GET /api/v4/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", b"HTTP/1.1 200 OK"),
        (b"GET /api/v4/version HTTP/1.0\r\nHost: x\r\n", b"HTTP/1.1 200 OK"),
        (b"GET /api/v4/version HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n", b"HTTP/1.1 100 Continue"),
        (b"GET /api/v4/version HTTP/1.1\r\nHost: x\r\n folded\r\n", b"HTTP/1.1 200 OK"),
        (b"GET /api/v4/version HTTP/2.0\r\nHost: x\r\n", b"Invalid HTTP version (2.0)"),  # no status line
        (b"GET /api/v4/version HTTP/1.1\r\n" + b"X: v\r\n" * (MAX_HEADERS + 1), b"HTTP/1.1 431"),
        (b"GET /api/v4/version HTTP/1.1 x\r\nHost: x\r\n", b"Bad request version ('x')"),
    ],
)
def test_request_lines_and_directives_are_answered_as_http_server_does(
    fakes: Fakes, head: bytes, expected: bytes
) -> None:
    """HTTP/1.0, Connection: close, Expect: 100-continue, folds and malformed heads: http.server's answers."""
    token = fakes.seed.manager_token.encode()
    answer = _exchange(fakes.seed.gitlab_url, head + b"PRIVATE-TOKEN: " + token + b"\r\n\r\n")
    assert expected in answer, answer[:80]


def test_100_continue_is_sent_before_the_body_is_read(fakes: Fakes) -> None:
    """A client waiting for ``100 Continue`` gets it at once, sends its body, then gets the answer."""
    host, port = fakes.seed.gitlab_url.removeprefix("http://").split(":")
    token = fakes.seed.manager_token.encode()
    head = b"GET /api/v4/version HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + b"PRIVATE-TOKEN: " + token + b"\r\nConnection: close\r\n\r\n")
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):  # the body is not sent until the 100 has come
            interim += conn.recv(1)
        conn.sendall(b"{}")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert b"".join(chunks).startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_client_resetting_its_connection_leaves_nothing_on_standard_error(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A client killed mid-connection resets it: the fake, as a real server, prints no traceback for that."""
    with FakeGitLab().running() as fake:
        server = fake._httpd  # noqa: SLF001 - its open connections say when the reset was handled
        assert server is not None
        host, port = server.server_address[:2]
        conn = socket.create_connection((str(host), int(port)), timeout=10)
        conn.sendall(b"GET /api/v4/version HTTP/1.1\r\n")  # a request begun, never finished
        deadline = time.monotonic() + 5
        while not server._open and time.monotonic() < deadline:  # noqa: SLF001 - its handler has it
            time.sleep(0.01)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # with no linger: a reset, as from a process that died
        while server._open and time.monotonic() < deadline:  # noqa: SLF001 - handled and closed
            time.sleep(0.01)
        assert not server._open  # noqa: SLF001
    assert capfd.readouterr().err == ""
