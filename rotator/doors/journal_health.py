"""The daemon's view of its journal: ``/readyz``'s ``journal`` field and ``rotator_journal_up``.

The probe reads (an unreachable database, or a damaged SQLite file, fails the read) and asks the
store whether it would accept a write (:meth:`rotator.core.ports.Journal.writable`: a standby or
``default_transaction_read_only`` says no), writing nothing.

Neither a probe nor a scrape may wait on a database that does not answer: the pool would wait
40 s for a connection, beyond a readiness probe's and a Prometheus scrape's timeouts, and a scrape
that times out hides every metric, the counters and this gauge among them. So each read runs on a
thread of its own and the caller waits at most a deadline; one read of each kind is in flight at
a time (a later caller waits on it, so a dead database holds one thread, not one per scrape), and
the probe's answer is kept for a moment so that one scrape and the probes around it share it.
"""

import threading
import time

from collections.abc import Callable
from typing import Generic, TypeVar

from rotator.core.errors import JournalDamagedError, JournalReadOnlyError, JournalUnavailableError
from rotator.core.ports import Journal


T = TypeVar("T")

OK = "ok"
READ_ONLY = "read-only"
DAMAGED = "damaged"
UNREACHABLE = "unreachable"
#: Seconds a probe may take before the journal counts as unreachable (below /readyz's 5 s timeout).
PROBE_DEADLINE = 3.0
#: Seconds the per-target gauges' read may take; with the probe's, under Prometheus's 10 s default.
GAUGES_DEADLINE = 5.0
#: Seconds a probe's answer is reused.
PROBE_FRESH = 2.0


class _Call(Generic[T]):
    """One read on its own thread: its value or its exception, once done."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class Deadline(Generic[T]):
    """``read`` on a thread of its own, waited for at most ``seconds``; one in flight at a time.

    ``fresh`` seconds after a read ends, its value is returned again without reading.
    """

    def __init__(
        self,
        read: Callable[[], T],
        seconds: float,
        *,
        fresh: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap ``read``."""
        self._read, self._seconds, self._fresh, self._clock = read, seconds, fresh, clock
        self._lock = threading.Lock()
        self._pending: _Call[T] | None = None
        self._kept: tuple[float, T] | None = None

    def __call__(self) -> T:
        """The read's value; its exception; TimeoutError if it has not ended within the deadline."""
        with self._lock:
            if self._kept is not None and self._clock() - self._kept[0] < self._fresh:
                return self._kept[1]
            call = self._pending
            if call is None:
                call = self._pending = _Call()
                threading.Thread(target=self._run, args=(call,), name="journal-read", daemon=True).start()
        if not call.done.wait(self._seconds):
            msg = f"no answer within {self._seconds:g} s"
            raise TimeoutError(msg)
        if call.error is not None:
            raise call.error
        return call.value  # type: ignore[return-value]  # set whenever error is not

    def _run(self, call: _Call[T]) -> None:
        try:
            call.value = self._read()
        except BaseException as error:  # noqa: BLE001 - handed to the caller, who decides
            call.error = error
        with self._lock:
            self._pending = None
            if call.error is None and self._fresh:
                self._kept = (self._clock(), call.value)  # type: ignore[assignment]
        call.done.set()


class JournalHealth:
    """Whether the journal can be read and written, asked within a deadline."""

    def __init__(
        self,
        journal: Journal,
        *,
        deadline: float = PROBE_DEADLINE,
        fresh: float = PROBE_FRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Probe ``journal``."""
        self._journal, self._fresh, self._clock = journal, fresh, clock
        self._probe: Deadline[str] = Deadline(self._ask, deadline, fresh=fresh, clock=clock)
        self._lock = threading.Lock()
        self._timed_out: tuple[float, str] | None = None

    def state(self) -> str:
        """``ok``, ``read-only``, ``damaged`` or ``unreachable (why)``."""
        with self._lock:
            # A probe that just timed out is not waited for again by the same scrape's next family.
            if self._timed_out is not None and self._clock() - self._timed_out[0] < self._fresh:
                return self._timed_out[1]
        try:
            return self._probe()
        except TimeoutError as error:
            state = f"{UNREACHABLE} ({error})"
            with self._lock:
                self._timed_out = (self._clock(), state)
            return state

    def reason(self) -> str | None:
        """Why the journal is unavailable (``unreachable``, ``read_only``, ``damaged``), or ``None``."""
        state = self.state()
        if state == OK:
            return None
        return state.split(" ", 1)[0].replace("-", "_")

    def _ask(self) -> str:
        try:
            self._journal.targets()
            return OK if self._journal.writable() else READ_ONLY
        except JournalDamagedError:
            return DAMAGED  # the runs' alerts carry the line saying where and what to do
        except JournalReadOnlyError:
            return READ_ONLY
        except Exception as error:  # noqa: BLE001 - any other failure to read means unreachable
            return f"{UNREACHABLE} ({type(error).__name__})"


def bounded_gauges(health: JournalHealth, read: Callable[[], list[T]]) -> Callable[[], list[T]]:
    """``read`` within :data:`GAUGES_DEADLINE`, and not at all while the probe cannot reach the journal.

    Left out rather than stale: a gauge says what the journal holds now, which nobody knows while
    it cannot be read; ``rotator_journal_up`` says why, and another replica that reaches the
    journal still exports them (the alert rules take ``max by (target)``).
    """
    bounded: Deadline[list[T]] = Deadline(read, GAUGES_DEADLINE)

    def gauges() -> list[T]:
        state = health.state()
        if state.startswith(UNREACHABLE):
            raise JournalUnavailableError("state.url", f"the journal is {state}")
        return bounded()

    return gauges
