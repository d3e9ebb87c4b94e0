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

from collections import deque
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TypeVar

import tenacity


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


class Limiter:
    """At most ``per_minute`` calls in any sliding 60-second window; callers block until allowed."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Allow ``per_minute`` calls per minute."""
        self._per_minute = per_minute
        self._clock, self._sleep = clock, sleep
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait until one more call fits in the window, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and now - self._calls[0] >= 60.0:  # noqa: PLR2004 - one minute
                    self._calls.popleft()
                if len(self._calls) < self._per_minute:
                    self._calls.append(now)
                    return
                wait = 60.0 - (now - self._calls[0])
            self._sleep(wait)
