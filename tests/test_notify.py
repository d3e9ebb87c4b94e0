"""The webhook notifier against a real loopback HTTP receiver."""

import io
import json
import threading
import time

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.adapters.logs import REDACTED
from rotator.adapters.webhook import QUEUE_SIZE, Webhook
from rotator.core.ports import Alert, Observer
from rotator.core.secret import Secret


AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
SECRET_PATH = "/services/T0001/B0002/hUnTeR2sEcReTpAtH"
USER_AGENT = "rotator/0.1.0 (test)"
TOKEN = "glpat-abcdefghij123456"
HANG = "hang"

#: What the receiver answers: a status, a status with headers, or HANG (no answer until released).
Reply = int | tuple[int, dict[str, str]] | str


@dataclass
class Received:
    """One request the receiver saw."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """A loopback webhook: records requests and answers from a script (then 200s)."""

    script: list[Reply] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    seen: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0

    @property
    def url(self) -> str:
        """The webhook URL, secret path included."""
        return f"http://127.0.0.1:{self.port}{SECRET_PATH}"

    def next_reply(self, received: Received) -> Reply:
        """Record a request and pick its answer."""
        with self.seen:
            self.requests.append(received)
            self.seen.notify_all()
            return self.script.pop(0) if self.script else 200

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``count`` requests arrived."""
        with self.seen:
            return self.seen.wait_for(lambda: len(self.requests) >= count, timeout)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = receiver.next_reply(Received(self.path, headers, json.loads(raw)))
            if reply == HANG:
                receiver.release.wait(30)
                reply = 200
            status, extra = reply if isinstance(reply, tuple) else (int(reply), {})
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the client gave up waiting (its timeout): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401 - the base class's signature
            del format, args

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1, an ephemeral port; shut down (and any hang released) afterwards."""
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = False  # so server_close joins the handler threads: none outlives the test
    state.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="test-receiver", daemon=True
    )
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    """The captured events."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


MakeHook = Callable[..., Webhook]


@pytest.fixture
def make_hook(receiver: Receiver) -> Iterator[MakeHook]:
    """Webhooks posting to the receiver, no real sleeping; all closed afterwards, hangs released first."""
    made: list[Webhook] = []

    def make(**kwargs: Any) -> Webhook:  # noqa: ANN401 - Webhook's own keyword arguments
        kwargs.setdefault("user_agent", USER_AGENT)
        kwargs.setdefault("sleep", lambda _s: None)
        kwargs.setdefault("timeout", 5.0)
        hook = Webhook(Secret(kwargs.pop("url", receiver.url)), **kwargs)
        made.append(hook)
        return hook

    yield make
    receiver.release.set()
    for hook in made:
        hook.close(5.0)


def alert(message: str = "POST /projects/:id/access_tokens: 500", **fields: Any) -> Alert:  # noqa: ANN401 - Alert's fields
    """An alert with defaults for the fields a test does not care about."""
    fields.setdefault("target", "app-deploy")
    fields.setdefault("reason", "failed")
    fields.setdefault("at", AT)
    return Alert(message=message, **fields)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        """Start at AT."""
        self.now = AT

    def __call__(self) -> datetime:
        """The current time."""
        return self.now


def test_payload_has_the_alert_fields_a_slack_text_line_and_our_user_agent(
    receiver: Receiver, make_hook: MakeHook
) -> None:
    """The body carries every alert field, a one-line Slack text, JSON content type and the User-Agent."""
    hook = make_hook()
    hook.alert(alert("Infisical answered 503", step="push"))
    assert hook.flush(5)
    [request] = receiver.requests
    assert request.path == SECRET_PATH
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "text": "rotator: app-deploy: failed at step push: Infisical answered 503",
        "source": "rotator",
        "target": "app-deploy",
        "reason": "failed",
        "step": "push",
        "message": "Infisical answered 503",
        "at": "2025-03-14T09:26:53Z",
        "expires_at": None,
    }


def test_expiring_text_names_the_expiry_date(receiver: Receiver, make_hook: MakeHook) -> None:
    """An `expiring` alert says when the token expires, in the text and as an ISO date."""
    hook = make_hook()
    hook.alert(alert("rotation keeps failing", reason="expiring", expires_at=date(2025, 3, 20)))
    assert hook.flush(5)
    body = receiver.requests[0].body
    assert body["expires_at"] == "2025-03-20"
    assert "expires on 2025-03-20 (in 5 days)" in body["text"]
    assert body["text"].startswith("rotator: app-deploy: expiring")


def test_text_says_the_target_and_step_once(receiver: Receiver, make_hook: MakeHook) -> None:
    """The text leads with target and step, so the error line's ``target=… step=…`` is not repeated."""
    route = "PATCH /api/v1/app-connections/gitlab/:connectionId"
    line = f"target=app-deploy step=push infisical {route} -> 503: down"
    hook = make_hook()
    hook.alert(alert(line, step="push"))
    assert hook.flush(5)
    body = receiver.requests[0].body
    assert body["text"] == (f"rotator: app-deploy: failed at step push: infisical {route} -&gt; 503: down")
    assert body["message"] == line  # the field keeps the whole line, for whoever parses it


def test_text_is_one_line_with_slack_markup_escaped(receiver: Receiver, make_hook: MakeHook) -> None:
    """A newline shows escaped and <, >, & are escaped, so a message cannot ping, forge a link or a line."""
    hook = make_hook()
    hook.alert(alert("line one\nline <!channel> & two"))
    assert hook.flush(5)
    body = receiver.requests[0].body
    assert body["text"].endswith(r"line one\nline &lt;!channel&gt; &amp; two")
    assert body["message"] == r"line one\nline <!channel> & two"


def test_an_upstream_message_reaches_the_webhook_escaped(receiver: Receiver, make_hook: MakeHook) -> None:
    """A forged line, an ANSI escape, BEL or a bidi override in a message arrives as visible escapes."""
    hook = make_hook()
    hook.alert(alert("refused\n2026-01-01 app-deploy: succeeded\r\x1b[2J\x07\u2028\u202e\x9b31m"))
    assert hook.flush(5)
    body = receiver.requests[0].body  # parsed: JSON's own \u001b escaping is undone here
    shown = r"refused\n2026-01-01 app-deploy: succeeded\r\x1b[2J\x07\u2028\u202e\x9b31m"
    assert body["message"] == shown
    assert body["text"].endswith(shown)
    assert [c for field in body.values() if field for c in field if not c.isprintable()] == []


def test_a_5xx_is_retried_then_succeeds(receiver: Receiver, make_hook: MakeHook, logs: io.StringIO) -> None:
    """A 500 then a 200: two requests, one `notify.sent` with attempts=2."""
    receiver.script[:] = [500]
    hook = make_hook()
    hook.alert(alert())
    assert hook.flush(5)
    assert len(receiver.requests) == 2
    sent = [e for e in events(logs) if e["event"] == "notify.sent"]
    assert sent == [sent[0]]
    assert sent[0]["attempts"] == 2
    assert sent[0]["target"] == "app-deploy"
    assert sent[0]["reason"] == "failed"


def test_a_429_waits_what_the_server_asks_then_retries(receiver: Receiver, make_hook: MakeHook) -> None:
    """A 429 with Retry-After: 0 is retried after exactly the wait the server asked for."""
    receiver.script[:] = [(429, {"Retry-After": "0"})]
    waits: list[float] = []
    hook = make_hook(sleep=waits.append)
    hook.alert(alert())
    assert hook.flush(5)
    assert len(receiver.requests) == 2
    assert waits == [0.0]


def test_a_400_is_not_retried_and_is_logged(
    receiver: Receiver, make_hook: MakeHook, logs: io.StringIO
) -> None:
    """Any other 4xx gives up at once: one request and a `notify.failed` warning with the status."""
    receiver.script[:] = [400]
    hook = make_hook()
    hook.alert(alert())
    assert hook.flush(5)
    assert len(receiver.requests) == 1
    [failed] = [e for e in events(logs) if e["event"] == "notify.failed"]
    assert failed["level"] == "warning"
    assert failed["status"] == 400
    assert failed["attempts"] == 1
    assert failed["host"] == "127.0.0.1"


def test_gives_up_after_the_configured_attempts(
    receiver: Receiver, make_hook: MakeHook, logs: io.StringIO
) -> None:
    """A receiver that keeps answering 503 gets exactly `attempts` requests, then one failure line."""
    receiver.script[:] = [503] * 10
    waits: list[float] = []
    hook = make_hook(attempts=3, sleep=waits.append)
    hook.alert(alert())
    assert hook.flush(5)
    assert len(receiver.requests) == 3
    assert len(waits) == 2  # no pointless wait after the last attempt
    [failed] = [e for e in events(logs) if e["event"] == "notify.failed"]
    assert (failed["status"], failed["attempts"]) == (503, 3)


def test_a_repeat_is_skipped_within_repeat_after_and_sent_after_it(
    receiver: Receiver, make_hook: MakeHook
) -> None:
    """Same target, reason and message: skipped until repeat_after has passed; a new message goes at once."""
    clock = Clock()
    hook = make_hook(clock=clock, repeat_after=timedelta(hours=1))
    hook.alert(alert("boom"))
    clock.now += timedelta(minutes=59)
    hook.alert(alert("boom"))
    hook.alert(alert("boom", target="other"))
    hook.alert(alert("a different boom"))
    assert hook.flush(5)
    assert [(r.body["target"], r.body["message"]) for r in receiver.requests] == [
        ("app-deploy", "boom"),
        ("other", "boom"),
        ("app-deploy", "a different boom"),
    ]
    clock.now += timedelta(minutes=1)
    hook.alert(alert("boom"))
    assert hook.flush(5)
    assert len(receiver.requests) == 4


def test_expiring_is_deduplicated_by_target_and_reason(receiver: Receiver, make_hook: MakeHook) -> None:
    """`expiring` alerts whose message counts days down are still one notification per target."""
    hook = make_hook(clock=Clock())
    hook.alert(alert("expires in 5 days", reason="expiring", expires_at=date(2025, 3, 19)))
    hook.alert(alert("expires in 4 days", reason="expiring", expires_at=date(2025, 3, 19)))
    hook.alert(alert("expires in 4 days", reason="expiring", target="other", expires_at=date(2025, 3, 19)))
    assert hook.flush(5)
    assert [r.body["target"] for r in receiver.requests] == ["app-deploy", "other"]


def test_alert_returns_at_once_while_the_receiver_hangs(receiver: Receiver, make_hook: MakeHook) -> None:
    """With the receiver hanging 5 s, alert() returns in well under a second and flush(0.2) is False."""
    receiver.script[:] = [HANG]
    hook = make_hook()
    started = time.monotonic()
    hook.alert(alert("first"))
    assert receiver.wait_for(1)
    hook.alert(alert("second"))
    assert time.monotonic() - started < 1.0
    assert hook.flush(0.2) is False
    receiver.release.set()
    assert hook.flush(5)
    assert [r.body["message"] for r in receiver.requests] == ["first", "second"]


def test_a_full_queue_drops_the_oldest_with_a_warning(
    receiver: Receiver, make_hook: MakeHook, logs: io.StringIO
) -> None:
    """Past QUEUE_SIZE waiting alerts the oldest waiting one is dropped and `notify.dropped` is logged."""
    receiver.script[:] = [HANG]
    hook = make_hook()
    hook.alert(alert("in flight"))
    assert receiver.wait_for(1)
    for n in range(QUEUE_SIZE + 1):
        hook.alert(alert(f"queued {n}"))
    dropped = [e for e in events(logs) if e["event"] == "notify.dropped"]
    assert len(dropped) == 1
    assert dropped[0]["level"] == "warning"
    receiver.release.set()
    assert hook.flush(30)
    messages = [r.body["message"] for r in receiver.requests]
    assert len(messages) == QUEUE_SIZE + 1
    assert "queued 0" not in messages
    assert messages[-1] == f"queued {QUEUE_SIZE}"


def test_a_token_in_the_message_is_redacted_in_the_delivered_body(
    receiver: Receiver, make_hook: MakeHook
) -> None:
    """A glpat- value in a message reaches neither the message nor the text of the notification."""
    hook = make_hook()
    hook.alert(alert(f"GitLab echoed {TOKEN} back"))
    assert hook.flush(5)
    body = receiver.requests[0].body
    assert TOKEN not in json.dumps(body)
    assert body["message"] == f"GitLab echoed {REDACTED} back"
    assert REDACTED in body["text"]


def test_logs_name_the_host_never_the_url(receiver: Receiver, make_hook: MakeHook, logs: io.StringIO) -> None:
    """Sent and failed lines carry the host only: the URL's secret path appears nowhere in the logs."""
    receiver.script[:] = [404]
    hook = make_hook()
    assert hook.host == "127.0.0.1"
    hook.alert(alert("one"))
    hook.alert(alert("two"))
    assert hook.flush(5)
    out = logs.getvalue()
    assert {e["event"] for e in events(logs)} == {"notify.failed", "notify.sent"}
    assert all(e["host"] == "127.0.0.1" for e in events(logs))
    assert "hUnTeR2sEcReTpAtH" not in out
    assert "/services/" not in out


def test_a_network_error_is_logged_by_type_not_text(make_hook: MakeHook, logs: io.StringIO) -> None:
    """Nothing listening: retried, then `notify.failed` with the exception type, never its text (the URL)."""
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()  # the port is now (almost certainly) refused
    hook = make_hook(url=f"http://127.0.0.1:{port}{SECRET_PATH}", attempts=2)
    hook.alert(alert())
    assert hook.flush(5)
    [failed] = [e for e in events(logs) if e["event"] == "notify.failed"]
    assert failed["error"] == "ConnectError"
    assert failed["attempts"] == 2
    assert "status" not in failed
    assert "hUnTeR2sEcReTpAtH" not in logs.getvalue()


def test_close_stops_the_thread_and_later_alerts_are_ignored(receiver: Receiver, make_hook: MakeHook) -> None:
    """After close() the sender thread is gone and alert() neither raises nor sends."""
    hook = make_hook()
    hook.alert(alert("before"))
    hook.close(5)
    assert not any(t.name == "rotator-notify" and t.is_alive() for t in threading.enumerate())
    hook.alert(alert("after"))
    assert hook.flush(0.1)
    assert [r.body["message"] for r in receiver.requests] == ["before"]


def test_no_alert_no_thread_and_rotation_finished_is_ignored(receiver: Receiver, make_hook: MakeHook) -> None:
    """An idle Webhook starts no thread, sends nothing for finished rotations and flushes at once."""
    observer: Observer = make_hook()
    observer.rotation_finished("app-deploy", "succeeded", 1.5)
    assert isinstance(observer, Webhook)
    assert observer.flush(0)
    assert not any(t.name == "rotator-notify" for t in threading.enumerate())
    assert receiver.requests == []


def test_any_message_becomes_valid_json_without_the_token(receiver: Receiver, make_hook: MakeHook) -> None:
    """Whatever surrounds a glpat- token in a message, the delivered body is JSON without the token."""
    hook = make_hook(repeat_after=timedelta(0))

    @settings(max_examples=60, deadline=None)
    @given(before=st.text(max_size=40), after=st.text(max_size=40), step=st.text(max_size=10))
    def check(before: str, after: str, step: str) -> None:
        count = len(receiver.requests)
        hook.alert(alert(before + TOKEN + after, step=step))
        assert hook.flush(5)
        assert len(receiver.requests) == count + 1
        body = receiver.requests[-1].body  # the receiver parsed it with json.loads
        assert TOKEN not in json.dumps(body, ensure_ascii=False)
        assert "\n" not in body["text"]

    check()


def test_a_failed_delivery_does_not_silence_its_repeat(receiver: Receiver, make_hook: MakeHook) -> None:
    """An alert the receiver refused is sent again when it recurs, not held back for an hour."""
    receiver.script[:] = [400, 200]
    hook = make_hook(clock=Clock(), repeat_after=timedelta(hours=1))
    hook.alert(alert("boom"))
    assert hook.flush(5)
    hook.alert(alert("boom"))
    assert hook.flush(5)
    assert [r.body["message"] for r in receiver.requests] == ["boom", "boom"]
