"""A shared limiter reserves several calls in one take of the ledger, and the fleet ceiling still holds.

Each :class:`Limiter` stands for one process (its threads share it); they count in one
:class:`MemoryJournal` ledger. Nothing really sleeps: the clock is a number the test (and every
wait) moves on, read by the ledger and by the limiters alike.
"""

import bisect
import threading

from collections import Counter
from datetime import UTC, datetime

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.adapters import retrying
from rotator.adapters.retrying import Limiter, reserved
from rotator.core.ledger import WINDOW, Reservation
from rotator.journal.memory import MemoryJournal


TICK = 1 / 64
BUCKET = "gitlab:https://gitlab.example.com:443"


class Clock:
    """Seconds since the epoch, moved by the test and by every wait."""

    def __init__(self, at: float = 1000.0) -> None:
        """At ``at``."""
        self.at = at
        self.lock = threading.Lock()

    def __call__(self) -> float:
        """The time now."""
        return self.at

    def sleep(self, seconds: float) -> None:
        """A wait: the clock moves on."""
        with self.lock:
            self.at += seconds

    def date(self) -> datetime:
        """The time now, as the ledger reads it."""
        return datetime.fromtimestamp(self.at, UTC)


class CountingLedger(MemoryJournal):
    """The memory store's ledger, counting its reservations."""

    def __init__(self, clock: Clock) -> None:
        """Count on ``clock``."""
        super().__init__(clock=clock.date)
        self.reservations: Counter[int] = Counter()  # calls asked for: how many times

    def reserve(self, bucket: str, per_minute: int, calls: int) -> Reservation:
        """Reserve, and count it."""
        self.reservations[calls] += 1
        return super().reserve(bucket, per_minute, calls)


def _busiest_window(calls: list[float]) -> int:
    """The most calls in any 60-second window (a window starting at each call is enough)."""
    ordered = sorted(calls)
    return max((bisect.bisect_left(ordered, at + WINDOW) - i for i, at in enumerate(ordered)), default=0)


def _limiters(clock: Clock, ledger: CountingLedger, per_minute: int, processes: int) -> list[Limiter]:
    return [
        Limiter(per_minute, clock=clock, sleep=clock.sleep, ledger=ledger, bucket=BUCKET)
        for _ in range(processes)
    ]


def test_the_default_ceilings_reserve_one_call_at_a_time() -> None:
    """Up to 1,199 a minute one call per take, as before; more only for a busy process and a high ceiling."""
    assert [reserved(per_minute, 100) for per_minute in (60, 200, 600, 1199)] == [1, 1, 1, 1]
    assert [reserved(per_minute, 100) for per_minute in (1200, 2400, 12_000, 1_000_000)] == [2, 3, 11, 16]
    assert reserved(1_000_000, 1) == 1  # a quiet process asks for what it needs
    assert reserved(1_000_000, 5) == 5


@settings(max_examples=60, deadline=None)
@given(
    per_minute=st.sampled_from([1, 3, 10, 60]),
    processes=st.integers(1, 3),
    asks=st.lists(
        st.tuples(
            st.integers(0, 2), st.one_of(st.integers(0, 8), st.integers(0, 64 * 70)), st.integers(1, 12)
        ),
        max_size=40,
    ),
)
def test_processes_sharing_a_ledger_never_exceed_the_ceiling_in_any_60s(
    per_minute: int, processes: int, asks: list[tuple[int, int, int]]
) -> None:
    """SAFETY: bursts of calls by several processes, spares spent or dropped: no window is over the ceiling.

    Reserving is made as eager as it can be (one spare per call a minute of ceiling), so small
    ceilings are reserved in batches too, and their edges reached.
    """
    clock = Clock()
    ledger = CountingLedger(clock)
    made: list[float] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retrying, "CEILING_PER_SPARE", 1)
        limiters = _limiters(clock, ledger, per_minute, processes)
        for process, gap, burst in asks:
            clock.at += gap * TICK
            for _ in range(burst):
                limiters[process % processes].acquire()
                made.append(clock.at)
                clock.at += TICK / 8  # the call itself
    assert _busiest_window(made) <= per_minute


def test_threads_of_processes_sharing_a_ledger_never_exceed_the_ceiling() -> None:
    """SAFETY: 3 processes of 4 threads each call as fast as allowed; no 60 s window holds more than 60."""
    clock = Clock()
    ledger = CountingLedger(clock)
    made: list[float] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retrying, "CEILING_PER_SPARE", 1)
        limiters = _limiters(clock, ledger, 60, 3)

        def work(limiter: Limiter) -> None:
            for _ in range(40):
                limiter.acquire()
                with clock.lock:  # the call: recorded when made, then time moves on
                    made.append(clock.at)
                    clock.at += 0.01

        threads = [threading.Thread(target=work, args=(limiter,)) for limiter in limiters for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(made) == 480
    assert _busiest_window(made) <= 60


def test_a_busy_process_asks_the_ledger_once_for_many_calls() -> None:
    """At 200 calls a second under a high ceiling, about one take per 16 calls, not one per call."""
    clock = Clock()
    ledger = CountingLedger(clock)
    (limiter,) = _limiters(clock, ledger, 1_000_000, 1)
    for _ in range(1000):
        limiter.acquire()
        clock.at += 0.005
    takes = sum(ledger.reservations.values())
    assert takes < 1000 / 10
    assert ledger.reservations[16] > 0


def test_spare_calls_are_dropped_when_the_second_they_were_counted_in_ends() -> None:
    """Spares are handed out until their second ends (less the margin); then the ledger is asked again."""
    clock = Clock(1000.5)
    ledger = CountingLedger(clock)
    (limiter,) = _limiters(clock, ledger, 1_000_000, 1)
    for _ in range(10):  # a busy last second: the next take asks for several
        limiter.acquire()
        clock.at += 0.001
    asked = sum(ledger.reservations.values())
    clock.at = 1000.98  # still in the second, before the margin
    limiter.acquire()
    assert sum(ledger.reservations.values()) == asked  # a spare
    clock.at = 1001.0 - retrying.SPARE_MARGIN / 2  # inside the margin: the spares are gone
    limiter.acquire()
    assert sum(ledger.reservations.values()) == asked + 1
