"""How long to wait before retrying, and how fast rotator may call upstream. Shared by both adapters.

A 429 was refused before any effect, so it is always retried; the wait comes from the server when
it says (``Retry-After`` seconds, else ``RateLimit-Reset`` epoch, else Infisical's "try again in N
seconds"), else exponential backoff. Every wait is capped, so a run finishes in bounded time.
"""

import random
import re
import threading
import time

from collections import deque
from collections.abc import Callable, Mapping


#: No single wait is longer than this, whatever the server asks.
MAX_WAIT = 60.0
#: Backoff for failures that carry no hint: base * 2**attempt, with jitter.
BACKOFF_BASE = 0.5
_TRY_AGAIN = re.compile(r"try again in (\d+) seconds?", re.IGNORECASE)


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
