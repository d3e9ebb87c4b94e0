"""Failure notifications to a Slack-compatible webhook; implements :class:`rotator.core.ports.Observer`.

Three rules shape this module:

* **It never blocks a rotation.** The engine calls :meth:`Webhook.alert` from a worker thread in the
  middle of a rotation, and a slow or dead chat server must not stretch a lease or hold a token
  half-rotated. So ``alert`` only builds the body and puts it on a bounded queue; one background
  daemon thread does the HTTP, retries included. When the queue is full the oldest alert is
  dropped (a warning says so): memory stays bounded however long the receiver is down.
* **It never carries a token.** Alert messages are meant to be token-free already, but a
  notification leaves our logs' reach for good, so message and text go through
  :func:`rotator.adapters.logs.scrub_text` (:mod:`rotator.core.redact` plus the live values) once more before
  they are sent; that also escapes control characters, so an upstream's message cannot forge a
  line or smuggle an ANSI escape into the channel.
* **The URL is a credential.** Whoever knows a Slack webhook URL can post to the channel, so it
  stays inside a :class:`~rotator.core.secret.Secret` and logs name only its host. A failure is logged
  by status or by exception *type*: httpx exception texts quote the URL.

A repeated alert (same target, reason and message; for ``expiring``, whose message counts the days
down, same target and reason) within ``repeat_after`` is skipped (the expiry watch's
``unmanaged_expiring`` digest, one per scope per day, is never within it): a daemon retrying a broken
target every few minutes would otherwise flood the channel and bury the next, different alert.
"""

import json
import threading
import time
import urllib.parse

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus

import httpx
import structlog

from rotator.adapters import httpclient, retrying
from rotator.core.durations import in_days, stamp
from rotator.core.errors import said_of
from rotator.core.model import Change
from rotator.core.ports import Alert
from rotator.core.redact import scrub_text
from rotator.core.schedule import expiry_instant
from rotator.core.secret import Secret


#: Alerts waiting for the sender thread; past this the oldest is dropped.
QUEUE_SIZE = 1000
EXPIRING = "expiring"
#: The expiry watch's digest: ``target`` is the scope, and no step failed.
UNMANAGED_EXPIRING = "unmanaged_expiring"
SOURCE = "rotator"
_THREAD_NAME = "rotator-notify"

log = structlog.get_logger("rotator")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _slack_line(text: str) -> str:
    # Slack reads &, < and > as markup (links, mentions); one line keeps a channel scannable.
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(escaped.split())


def _text(alert: Alert, message: str, expires_at: date | None) -> str:
    # The line leads with the target and the step: the message does not repeat them.
    if alert.reason == EXPIRING:
        # A naive datetime in an alert is the engine's UTC clock without its zone, not local time.
        at = alert.at if alert.at.tzinfo else alert.at.replace(tzinfo=UTC)
        left = f" ({in_days(expiry_instant(expires_at) - at)})" if expires_at else ""
        when = f", the token expires on {expires_at.isoformat()}{left}" if expires_at else ""
        return f"{SOURCE}: {alert.target}: {EXPIRING}{when}: {said_of(alert.target, message)}"
    if alert.reason == UNMANAGED_EXPIRING:
        return f"{SOURCE}: {alert.target}: {UNMANAGED_EXPIRING}: {message}"
    said = said_of(alert.target, message, alert.step)
    return f"{SOURCE}: {alert.target}: {alert.reason} at step {alert.step}: {said}"


def payload(alert: Alert) -> dict[str, str | None]:
    """The JSON body sent for ``alert``: a Slack ``text`` line plus the alert's fields, scrubbed."""
    message = scrub_text(alert.message)
    return {
        "text": scrub_text(_slack_line(_text(alert, message, alert.expires_at))),
        "source": SOURCE,
        "target": alert.target,
        "reason": alert.reason,
        "step": alert.step,
        "message": message,
        "at": stamp(alert.at),
        "expires_at": alert.expires_at.isoformat() if alert.expires_at else None,
    }


_Key = tuple[str, ...]


class _Refused(Exception):  # noqa: N818 - the receiver's answer, not rotator's error
    """An attempt the receiver answered with something other than a 2xx."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.status, self.response = response.status_code, response


#: A repeated alert is harmless next to a lost one: a 429, a 5xx and a lost connection are retried;
#: any other refusal (a revoked webhook answers 404 or 410) will not change on retry.
_RULES = retrying.Policy(idempotent=True)


def _answer(exc: BaseException) -> retrying.Answer | None:
    """An attempt's failure as the retry loop sees it; anything but these leaves ``_deliver`` at once."""
    if isinstance(exc, httpx.TransportError):
        return retrying.Answer(None)
    if not isinstance(exc, _Refused):
        return None
    if exc.status == HTTPStatus.TOO_MANY_REQUESTS:  # only a 429's wait reads the server's hints
        return retrying.Answer(exc.status, exc.response.headers, exc.response.text[:200])
    return retrying.Answer(exc.status)


@dataclass(frozen=True, slots=True)
class _Delivery:
    key: _Key
    queued_at: datetime
    target: str
    reason: str
    body: bytes


class Webhook:
    """Posts each alert as JSON to a webhook, from one background thread, with retries.

    ``rotation_finished`` is ignored: only alerts are worth a message to people.
    """

    def __init__(  # noqa: PLR0913 - each knob is keyword-only and has a default; tests inject the last three
        self,
        url: Secret,
        *,
        user_agent: str,
        timeout: float = 10.0,
        attempts: int = 5,
        repeat_after: timedelta = timedelta(hours=1),
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Post to ``url``; the Webhook owns ``client`` (made here if not given) and closes it."""
        self._url = url
        self._host = urllib.parse.urlsplit(url.reveal()).hostname or "?"
        self._headers = {"User-Agent": user_agent, "Content-Type": "application/json"}
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._repeat_after = repeat_after
        # Redirects stay off: a 3xx is a misconfigured URL to report, not a reason to post elsewhere.
        self._client = client if client is not None else httpclient.Client(timeout=timeout)  # no cookies
        self._sleep = sleep
        self._clock = clock
        self._changed = threading.Condition()
        self._queue: deque[_Delivery] = deque()
        self._recent: dict[_Key, datetime] = {}
        self._in_flight = False
        self._stopping = False
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The webhook's host: the one part of its URL that may be shown."""
        return self._host

    def rotation_finished(self, target: str, outcome: str, seconds: float) -> None:
        """Ignore it: a finished rotation is for metrics, not for a chat channel."""

    def recorded(self, target: str, change: Change) -> None:
        """Ignore it: steps are for the log and the demo, not for a chat channel."""

    def alert(self, alert: Alert) -> None:
        """Queue ``alert`` for posting, unless it repeats a recent one; returns at once, never raises."""
        try:
            self._enqueue(alert)
        except Exception as exc:  # noqa: BLE001 - an observer must never fail the rotation calling it
            log.warning("notify.failed", host=self._host, target=alert.target, error=type(exc).__name__)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued alert to be sent or given up; True if so."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._queue and not self._in_flight, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush for up to ``timeout`` seconds, abandon what is left, stop the thread, close the client."""
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        with self._changed:
            if self._closed:
                return
            self._closed = self._stopping = True
            abandoned = len(self._queue)
            self._queue.clear()
            self._changed.notify_all()
            thread = self._thread
        if abandoned:
            log.warning("notify.abandoned", host=self._host, alerts=abandoned)
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                # Still inside a request: closing the client under it would fail that request
                # mid-write; the thread closes it itself once the request returns.
                return
        self._client.close()

    def _enqueue(self, alert: Alert) -> None:
        message = scrub_text(alert.message)
        # An expiring alert's message counts the days down, so it would never repeat word for word.
        key = (
            (alert.target, alert.reason)
            if alert.reason == EXPIRING
            else (alert.target, alert.reason, message)
        )
        body = json.dumps(payload(alert)).encode()
        now = self._clock()
        with self._changed:
            if self._closed:
                return
            self._forget_older_than(now)
            last = self._recent.get(key)
            if last is not None and now - last < self._repeat_after:
                return
            self._recent[key] = now
            dropped = None
            if len(self._queue) >= QUEUE_SIZE:
                dropped = self._queue.popleft()
                if self._recent.get(dropped.key) == dropped.queued_at:
                    # Never sent, so a repeat of it later deserves its chance.
                    del self._recent[dropped.key]
            self._queue.append(_Delivery(key, now, alert.target, alert.reason, body))
            self._start()
            self._changed.notify_all()
        if dropped is not None:
            log.warning("notify.dropped", host=self._host, target=dropped.target, reason=dropped.reason)

    def _forget_older_than(self, now: datetime) -> None:
        # Keeps the dedupe map as small as the alerts of the last repeat_after, in a long-lived daemon.
        stale = [key for key, at in self._recent.items() if now - at >= self._repeat_after]
        for key in stale:
            del self._recent[key]

    def _start(self) -> None:
        # Lazily, so a run that raises no alert starts no thread; called with the lock held.
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=_THREAD_NAME, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    break
                delivery = self._queue.popleft()
                self._in_flight = True
            try:
                self._deliver(delivery)
            except Exception as exc:  # noqa: BLE001 - the sender thread must outlive any one alert
                self._failed(delivery, attempts=0, error=type(exc).__name__)
            finally:
                with self._changed:
                    self._in_flight = False
                    self._changed.notify_all()
        with self._changed:
            # close() gave up waiting for the request in flight and left the client to this thread.
            close_client = self._closed
        if close_client:
            self._client.close()

    def _deliver(self, delivery: _Delivery) -> None:
        tried = 0

        def post() -> None:
            nonlocal tried
            tried += 1
            response = self._client.post(
                self._url.reveal(), content=delivery.body, headers=self._headers, timeout=self._timeout
            )
            if not response.is_success:
                raise _Refused(response)

        try:
            retrying.call(
                post,
                _RULES,
                _answer,
                attempts=self._attempts,
                sleep=self._sleep,
                stopping=lambda: self._stopping,
            )
        except httpx.TransportError as exc:
            self._failed(delivery, attempts=tried, error=type(exc).__name__)
        except _Refused as refused:
            self._failed(delivery, attempts=tried, status=refused.status)
        else:
            log.info(
                "notify.sent", host=self._host, target=delivery.target, reason=delivery.reason, attempts=tried
            )

    def _failed(
        self, delivery: _Delivery, *, attempts: int, status: int | None = None, error: str | None = None
    ) -> None:
        with self._changed:
            # Not delivered, so it must not silence the same alert for an hour: the next may get through.
            if self._recent.get(delivery.key) == delivery.queued_at:
                del self._recent[delivery.key]
        fields: dict[str, object] = {"status": status} if status is not None else {"error": error or "closed"}
        log.warning(
            "notify.failed",
            host=self._host,
            target=delivery.target,
            reason=delivery.reason,
            attempts=attempts,
            **fields,
        )
