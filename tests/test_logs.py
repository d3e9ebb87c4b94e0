"""Logging: JSON lines, the scrubber as the last processor, tracebacks without locals."""

import io
import json
import secrets
import socket
import sys
import time

import psycopg_pool
import pytest
import structlog

from rotator.adapters.logs import REDACTED, bridge, configure, scrub_text, watch
from rotator.core.secret import Secret


def _capture() -> io.StringIO:
    stream = io.StringIO()
    configure(stream=stream, json=True)
    return stream


def test_events_are_json_lines_with_level_and_time() -> None:
    """Off a terminal each event is one JSON object with event, level and an ISO timestamp."""
    stream = _capture()
    structlog.get_logger("rotator").info("rotation.finished", target="app-deploy", outcome="succeeded")
    event = json.loads(stream.getvalue())
    assert event["event"] == "rotation.finished"
    assert event["level"] == "info"
    assert event["timestamp"].endswith("Z")


def test_token_shaped_strings_and_watched_values_are_scrubbed() -> None:
    """glpat- values, JWTs and any watched live value never reach the output, even nested."""
    stream = _capture()
    live = Secret("s3cr3t-value-without-prefix")
    with watch(live):
        structlog.get_logger("rotator").error(
            "oops",
            message="bad glpat-AbCdEf123456_x token",
            nested={"jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3OCJ9.c2lnbmF0dXJl"},
            raw=f"value={live.reveal()}",
        )
    out = stream.getvalue()
    assert "glpat-" not in out
    assert "eyJhbGci" not in out
    assert "s3cr3t-value" not in out
    assert out.count(REDACTED) == 3


def test_a_value_is_no_longer_watched_after_its_block() -> None:
    """Outside `watch`, a plain string is left alone (the scrubber holds no value longer than needed)."""
    with watch(Secret("plain-words")):
        assert scrub_text("plain-words") == REDACTED
    assert scrub_text("plain-words") == "plain-words"


def _fail_holding(token: str) -> None:
    raise ValueError(len(token))


def test_tracebacks_do_not_show_locals() -> None:
    """An exception logged with its traceback shows no local variable, so a token in a frame stays put."""
    stream = _capture()
    try:
        _fail_holding("tokenvalue-in-a-local")
    except ValueError:
        structlog.get_logger("rotator").exception("failed")
    out = stream.getvalue()
    assert "ValueError" in out
    assert "tokenvalue-in-a-local" not in out


FORGED = (
    "refused\n2026-01-01T00:00:00Z [info] rotation.finished outcome=succeeded\r\x1b[2J\u2028\u202e\x9b31m"
)
SHOWN = (
    r"refused\n2026-01-01T00:00:00Z [info] rotation.finished outcome=succeeded\r\x1b[2J\u2028\u202e\x9b31m"
)


def test_an_upstream_message_is_escaped_in_the_json_line() -> None:
    """A forged line or an ANSI escape in an event's value is text in the JSON, even after ``jq -r``."""
    stream = _capture()
    structlog.get_logger("rotator").error("target.alert", error=FORGED, nested={"names": [FORGED]})
    [line] = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["error"] == SHOWN
    assert event["nested"] == {"names": [SHOWN]}


def test_an_upstream_message_is_one_line_on_a_terminal() -> None:
    """The readable renderer shows escapes, never the raw ESC, BEL or newline an upstream sent."""
    stream = io.StringIO()
    configure(stream=stream, json=False)
    # Without a space the renderer prints a value bare (unquoted), so the escaping is all there is.
    structlog.get_logger("rotator").error("target.alert", name="ok\x1b[2J\x1b]0;pwned\x07", error=FORGED)
    out = stream.getvalue()
    assert out.count("\n") == 1
    assert r"name=ok\x1b[2J\x1b]0;pwned\x07" in out
    assert [c for c in out.rstrip("\n") if not c.isprintable()] == []


@pytest.mark.parametrize("configured", [False, True], ids=["before-configure", "after-configure"])
def test_a_pool_warning_is_a_json_event_without_the_password(
    *, configured: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """psycopg_pool's warning (a closed port) is one scrubbed JSON event on stderr, before configure too."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)  # read when the pool's thread logs: never a terminal
    structlog.reset_defaults()
    if configured:
        configure(stream=stderr)
    else:
        bridge()  # as the command line does first: status, history and state copy configure no log
    password = "Pg-" + secrets.token_hex(8)  # not watched: the pool's own text must not hold it
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        port = closed.getsockname()[1]
        url = f"postgresql://rotator@127.0.0.1:{port}/test"
        pool = psycopg_pool.ConnectionPool(url, kwargs={"password": password}, min_size=1, open=False)
        pool.open(wait=False)
        try:
            deadline = time.monotonic() + 10
            while "error connecting" not in stderr.getvalue():
                assert time.monotonic() < deadline, "the pool never warned"
                time.sleep(0.01)
        finally:
            pool.close(timeout=1)
    text = stderr.getvalue()
    first = json.loads(text.splitlines()[0])
    assert (first["event"], first["level"], first["logger"]) == ("library.log", "warning", "psycopg.pool")
    assert f"port {port} failed" in first["message"]
    assert password not in text
    assert url not in text
    assert capsys.readouterr().out == ""
