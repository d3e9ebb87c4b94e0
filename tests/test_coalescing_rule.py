"""The one coalescing rule the daemon (at the POST) and the engine (under the lease) both ask."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.coalescing import CLOCK_SKEW_MARGIN, coalesces, fast_clock_skew, next_trigger
from rotator.core.model import Change, Outcome, RotationRecord, Step, TargetKey
from rotator.core.spec import EngineSpec, RotationSpec, TokenShape
from rotator.engine.context import Context
from rotator.engine.run import Engine, RunOptions
from rotator.journal.memory import MemoryJournal


URL = "https://gitlab.example.com"
KEY = TargetKey(URL, 7, "3c90c3cc-0d44-4b50-8888-8dd25736052a")
END = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
TICK = timedelta(microseconds=1)
FORCED = RotationRecord(
    id="r1",
    key=KEY,
    target="app-deploy",
    trigger="http",
    actor="test",
    step=Step.VERIFIED,
    outcome=Outcome.SUCCEEDED,
    token_name="app-deploy-20261102-0000000",
    requested_expiry=date(2026, 12, 2),
    planned_at=END - timedelta(seconds=20),
    finished_at=END,
)


def test_the_boundary_is_exclusive_at_the_end_plus_the_interval() -> None:
    """A trigger a tick before end + interval coalesces; one exactly at it starts a rotation."""
    assert coalesces(FORCED, END + MINUTE - TICK, MINUTE, END + MINUTE - TICK)
    assert not coalesces(FORCED, END + MINUTE, MINUTE, END + MINUTE)
    # The instant the coalesced answer announces is that same boundary.
    assert next_trigger(FORCED, END, MINUTE) == END + MINUTE


def test_the_instant_decides_not_the_time_of_asking() -> None:
    """Under the lease, later than the POST: a trigger that arrived inside the interval still coalesces."""
    arrived, asked = END + MINUTE - TICK, END + timedelta(hours=1)
    assert coalesces(FORCED, arrived, MINUTE, asked)
    assert not coalesces(FORCED, arrived + TICK, MINUTE, asked)


def test_nothing_coalesces_onto_no_rotation_an_unfinished_one_or_with_a_zero_interval() -> None:
    """No forced rotation, one still in progress, or ``min_trigger_interval: 0s``: the trigger rotates."""
    assert not coalesces(None, END, MINUTE, END)
    in_flight = replace(FORCED, step=Step.PUSHED, outcome=Outcome.IN_PROGRESS, finished_at=None)
    assert not coalesces(in_flight, END, MINUTE, END)
    assert not coalesces(FORCED, END, timedelta(0), END)


def test_a_failed_forced_rotation_counts_from_its_start_when_it_has_no_end() -> None:
    """Whatever its outcome; with no recorded end, its start is its end."""
    failed = replace(FORCED, outcome=Outcome.FAILED, finished_at=None)
    assert coalesces(failed, failed.planned_at + MINUTE - TICK, MINUTE, END)
    assert not coalesces(failed, failed.planned_at + MINUTE, MINUTE, END)


def test_a_fast_clocks_rotation_is_not_recent() -> None:
    """Stamped beyond the skew margin ahead of this clock: not coalesced onto; within it: coalesced."""
    now = END - CLOCK_SKEW_MARGIN - TICK
    assert fast_clock_skew(FORCED, now, CLOCK_SKEW_MARGIN) == CLOCK_SKEW_MARGIN + TICK
    assert not coalesces(FORCED, now, timedelta(hours=1), now)
    now = END - CLOCK_SKEW_MARGIN
    assert fast_clock_skew(FORCED, now, CLOCK_SKEW_MARGIN) is None
    assert coalesces(FORCED, now, timedelta(hours=1), now)


@given(
    since_end=st.timedeltas(min_value=-CLOCK_SKEW_MARGIN, max_value=timedelta(days=2)),
    interval=st.timedeltas(min_value=TICK, max_value=timedelta(days=1)),
)
def test_a_finished_rotation_coalesces_exactly_while_the_instant_is_before_its_end_plus_interval(
    since_end: timedelta, interval: timedelta
) -> None:
    """For any instant and interval (clocks within the margin): coalesced iff instant < end + interval."""
    instant = END + since_end
    assert coalesces(FORCED, instant, interval, instant) == (instant < END + interval)
    if coalesces(FORCED, instant, interval, instant):
        assert instant < next_trigger(FORCED, instant, interval) <= instant + interval


def _engine_with_a_forced_rotation(now: datetime) -> Engine:
    journal = MemoryJournal()
    lease = journal.acquire(KEY, "app-deploy", "test", END, MINUTE)
    assert lease is not None
    journal.write(lease, Change(rotation=FORCED))
    journal.release(lease)
    target = RotationSpec(
        name="app-deploy",
        project=KEY.project_id,
        connection_id=KEY.connection_id,
        token=TokenShape(("api",), 40, timedelta(days=30)),
        token_base_name="app-deploy",
        renew_before=timedelta(days=10),
        grace=timedelta(hours=1),
    )
    unused = cast("Any", None)  # a coalesced run returns before any upstream call
    ctx = Context(unused, unused, journal, lambda: now, lambda _s: None, lambda: 0.0, URL, "test")
    return Engine(EngineSpec(URL, (target,)), ctx)


def test_the_engine_under_the_lease_coalesces_a_trigger_that_arrived_inside_the_interval() -> None:
    """Asked an hour later (the job waited for a worker): the arrival decides, the run starts nothing."""
    engine = _engine_with_a_forced_rotation(END + timedelta(hours=1))
    options = RunOptions(
        names=("app-deploy",),
        force=True,
        trigger="http",
        triggered_at=END + MINUTE - TICK,
        min_trigger_interval=MINUTE,
    )
    [report] = engine.run(options)
    assert (report.status, report.failed, report.coalesced_onto) == ("coalesced", False, "r1")
    assert report.rotations == ()
