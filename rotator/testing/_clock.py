"""A clock the tests can move.

The fakes decide expiry, JWT lifetimes, ``last_used_at`` cadence and rate-limit windows from this
clock, never from the wall clock directly. It keeps ticking with real time (so latency and timeouts
still mean something) plus an offset that a test can move forwards or backwards at will.
"""

import threading

from datetime import UTC, datetime, timedelta


class FakeClock:
    """Real time plus a movable offset; thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        """Start at ``start`` (timezone-aware) or at the real current time."""
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        if start is not None:
            self.set(start)

    def now(self) -> datetime:
        """The fake current time, timezone-aware UTC."""
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock by ``delta`` (may be negative) and return the new time."""
        with self._lock:
            self._offset += delta
            return datetime.now(UTC) + self._offset

    def set(self, when: datetime) -> None:
        """Jump to ``when``; time keeps ticking from there."""
        if when.tzinfo is None:
            msg = "FakeClock.set needs a timezone-aware datetime"
            raise ValueError(msg)
        with self._lock:
            self._offset = when - datetime.now(UTC)

    @property
    def offset(self) -> timedelta:
        """How far the fake time is ahead of real time."""
        with self._lock:
            return self._offset
