"""The one retry loop of the adapters (GitLab, Infisical, webhook), its waits, and the rate limiter.

:func:`call` runs one logical request, attempt after attempt, on tenacity. Each adapter says which
failures are which by turning an exception into an :class:`Answer` (or ``None``: not a failure a
retry can help, re-raised at once), and which answers it retries by a :class:`Policy`:

* a 429 was refused before any effect, so it is always retried, non-idempotent calls included;
  the wait comes from the server when it says (``Retry-After`` seconds, else ``RateLimit-Reset``
  epoch, else Infisical's "try again in N seconds"), else exponential backoff;
* an answer in the policy's ``transient`` statuses (a 5xx), or no answer at all (a timeout, a lost
  connection), leaves the outcome unknown: retried with jittered backoff only when the policy is
  ``idempotent``. A token create is not, so it is never blind-retried;
* at most ``attempts`` tries, and every wait is capped, so a run finishes in bounded time.

The sleep is injected (the tests' sleep scale and fake sleeps), and so is a ``stopping`` check:
once it says so, no further attempt is made and the last failure is raised.
"""

import random
import re
import threading
import time
import urllib.parse

from collections import deque
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TypeVar

import tenacity

from rotator.core.errors import JournalUnavailableError, RotatorError
from rotator.core.ledger import Counts, Reservation, admit
from rotator.core.ports import CallLedger


#: Tries per logical request in a run or the daemon (``check`` makes one: it reports, it does not persevere).
ATTEMPTS = 5
#: No single wait is longer than this, whatever the server asks.
MAX_WAIT = 60.0
#: Backoff for failures that carry no hint: base * 2**attempt, with jitter.
BACKOFF_BASE = 0.5
_TRY_AGAIN = re.compile(r"try again in (\d+) seconds?", re.IGNORECASE)
#: Every 5xx (an HTTP status has three digits): the server may have failed after acting.
SERVER_ERRORS: Container[int] = range(HTTPStatus.INTERNAL_SERVER_ERROR, 1000)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer:
    """A failed attempt as the retry rules see it.

    ``status`` is ``None`` when no answer came (a timeout, a lost connection): the outcome is
    unknown. ``headers`` and ``message`` are the server's hints for a 429's wait; nothing else reads them.
    """

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    """Which failed attempts an adapter's call retries (see the module docstring)."""

    #: Whether repeating the request is harmless, so an unknown outcome may be retried blind.
    idempotent: bool
    #: Answers that leave the outcome unknown (the server may have failed after acting).
    transient: Container[int] = SERVER_ERRORS

    def retries(self, answer: Answer) -> bool:
        """Whether a call under this policy tries again after ``answer``."""
        if answer.status == HTTPStatus.TOO_MANY_REQUESTS:
            return True  # refused before any effect: safe to repeat, whatever the request
        return self.idempotent and (answer.status is None or answer.status in self.transient)


def wait_after(answer: Answer, attempt: int, now: float) -> float:
    """Seconds to wait after ``answer`` to attempt ``attempt`` (0-based) before the next one."""
    if answer.status == HTTPStatus.TOO_MANY_REQUESTS:
        return rate_limit_wait(answer.headers, answer.message, attempt, now)
    return backoff(attempt)


class _Stopped(Exception):  # noqa: N818 - a signal inside call(), never seen outside it
    """Raised by the sleep once ``stopping`` says so; :func:`call` raises the last failure instead."""


def call(  # noqa: PLR0913 - every knob but the first three is keyword-only and injected by tests
    send: Callable[[], T],
    policy: Policy,
    answer: Callable[[BaseException], Answer | None],
    *,
    attempts: int,
    sleep: Callable[[float], None],
    stopping: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.time,
) -> T:
    """``send()``'s result, trying at most ``attempts`` times; else its last exception, re-raised.

    After a failure, ``answer(exc)`` says what it was; if ``policy`` retries that answer and an
    attempt is left, :func:`wait_after` seconds are slept (``clock`` is the wall clock a
    ``RateLimit-Reset`` epoch is read against) and ``send`` runs again, unless ``stopping()``
    says so by then.
    """
    failures: list[tuple[BaseException, Answer]] = []

    def retry(state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        seen = answer(exc) if exc is not None else None
        if exc is None or seen is None:
            return False
        failures.append((exc, seen))
        return policy.retries(seen)

    def wait(state: tenacity.RetryCallState) -> float:
        return wait_after(failures[-1][1], state.attempt_number - 1, clock())

    def nap(seconds: float) -> None:
        sleep(seconds)
        if stopping is not None and stopping():
            raise _Stopped

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, attempts)),
        retry=retry,
        wait=wait,
        sleep=nap,
        reraise=True,
    )
    try:
        return retrying(send)
    except _Stopped:
        pass
    # Outside the handler, so the failure keeps its own cause and context (messages read them).
    raise failures[-1][0]


def backoff(attempt: int, *, base: float = BACKOFF_BASE) -> float:
    """Exponential backoff with full jitter for attempt 0, 1, 2, ..."""
    ceiling = min(MAX_WAIT, base * 2**attempt)
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311 - jitter, not a secret


def rate_limit_wait(headers: Mapping[str, str], message: str, attempt: int, now: float) -> float:
    """Seconds to wait after a 429 (see the module docstring), capped at :data:`MAX_WAIT`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    retry_after = lowered.get("retry-after", "").strip()
    if retry_after.isdigit():
        return min(MAX_WAIT, float(retry_after))
    reset = lowered.get("ratelimit-reset", "").strip()
    if reset.isdigit():
        return min(MAX_WAIT, max(0.0, float(reset) - now))
    match = _TRY_AGAIN.search(message)
    if match:
        return min(MAX_WAIT, float(match.group(1)))
    return backoff(attempt)


def bucket(kind: str, url: str) -> str:
    """A shared ledger's bucket for ``kind`` of calls to the upstream at ``url``: ``kind:url``.

    The URL as every replica spells it alike: scheme and host lower case, the scheme's default
    port written out, no trailing slash (so one instance is one bucket, however it is configured).
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # not a number: the config would have refused it; keep the URL as written
        return f"{kind}:{url.rstrip('/')}"
    port = port or {"http": 80, "https": 443}.get(scheme)
    return f"{kind}:{scheme}://{(parts.hostname or '').lower()}:{port}{parts.path.rstrip('/')}"


#: The most calls a shared limiter reserves in one take of the ledger.
MOST_RESERVED = 16
#: Ceiling (calls a minute) per call a shared limiter may reserve beyond the one it needs now: a
#: reserved call left unmade when its second ends is lost to everyone (it still counts), so a
#: process loses at most ``reserved - 1`` calls a second, a twentieth of its ceiling at most.
CEILING_PER_SPARE = 1200
#: A reserved call is made this long before its second ends on the ledger's clock, or not at all:
#: room for the two clocks' rates to differ (NTP slews at 0.5 ms a second at most).
SPARE_MARGIN = 0.01


def reserved(per_minute: int, recent: int) -> int:
    """How many calls a shared limiter asks for at once: what it made in the last second, within bounds.

    At least one; at most :data:`MOST_RESERVED`, and one more per :data:`CEILING_PER_SPARE` of
    ceiling (the default ceilings, 600 and less, reserve one at a time: as before).
    """
    return max(1, min(recent, MOST_RESERVED, 1 + per_minute // CEILING_PER_SPARE))


class Limiter:
    """At most ``per_minute`` calls in any 60-second window; callers block until allowed.

    Alone, it counts this process's calls on ``clock``. Given a shared ``ledger`` (the journal's,
    when several processes or replicas share one), it counts there, in ``bucket``, so the ceiling
    holds for all of them together; the ledger's own clock then counts. Either way the window is
    :func:`rotator.core.ledger.admit`'s.

    With a ledger, one take may reserve several calls (:func:`reserved`: about as many as the
    process made in the last second, so a busy process asks the database once for many calls);
    the spare ones are handed to the next callers of this limiter until the second they were
    counted in ends on the ledger's clock (measured on ``clock`` from when the take was sent,
    which is no later than the ledger read its clock, so the estimate errs early), less
    :data:`SPARE_MARGIN`. One unspent by then is dropped: it stays counted, so the ceiling holds
    (:func:`rotator.core.ledger.reserve`).

    A ledger that fails (its database cannot be reached) fails the call before it is sent: a
    replica that cannot count its calls with the others sends none. The error is the journal's
    (:class:`JournalUnavailableError`, or the store's own :class:`RotatorError`), never an
    upstream's, so the engine reports the journal as what failed.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        ledger: CallLedger | None = None,
        bucket: str = "",
    ) -> None:
        """Allow ``per_minute`` calls per minute, in this process or in ``ledger``'s ``bucket``."""
        if ledger is not None and not bucket:
            msg = "a shared ledger needs a bucket name"
            raise ValueError(msg)
        self._per_minute = per_minute
        self._clock, self._sleep = clock, sleep
        self._ledger, self._bucket = ledger, bucket
        self._calls: Counts = ()
        self._lock = threading.Lock()
        # With a ledger: reserved calls not yet handed out, until when (on ``clock``), and when the
        # calls of the last second were handed out (how many to reserve next).
        self._spare, self._spare_until = 0, 0.0
        self._recent: deque[float] = deque()

    def acquire(self) -> None:
        """Wait until one more call fits in the window, then count it."""
        while True:
            wait = self._take()
            if wait <= 0.0:
                return
            self._sleep(wait)

    def _take(self) -> float:
        """Count one call if it fits (0.0), else the seconds to wait before asking again."""
        with self._lock:
            if self._ledger is None:
                self._calls, wait = admit(self._calls, self._clock(), self._per_minute)
                return wait
            # Held across the ledger's round trip: this process's other callers wait for its
            # answer, and most then find a spare call instead of asking the database each.
            now = self._clock()
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if self._spare > 0 and now < self._spare_until:
                self._spare -= 1
                self._recent.append(now)
                return 0.0
            taken = self._reserve(reserved(self._per_minute, len(self._recent) + 1))
            if taken.granted:
                self._spare, self._spare_until = taken.granted - 1, now + taken.left - SPARE_MARGIN
                self._recent.append(now)
                return 0.0
            self._spare = 0
            return taken.wait

    def _reserve(self, calls: int) -> Reservation:
        assert self._ledger is not None  # noqa: S101 - only called with a ledger
        try:
            return self._ledger.reserve(self._bucket, self._per_minute, calls)
        except RotatorError:
            raise  # the store's own words: unreachable, damaged
        except Exception as error:  # noqa: BLE001 - whatever failed, the call was not counted
            # Any other failure (a lock that timed out, a driver's surprise) means the same: the
            # call cannot be counted with the others', so it is not sent. Its type only: its text
            # is not known to be free of anything a message must not carry.
            problem = f"the shared call ledger failed ({type(error).__name__}); the request was not sent"
            raise JournalUnavailableError("state.url", problem) from None
