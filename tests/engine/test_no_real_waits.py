"""The engine harness waits for nothing: backoff and client timeouts are asked for, never slept."""

import time

from pathlib import Path

from rotator.adapters.retrying import BACKOFF_BASE, MAX_WAIT
from rotator.testing import Fakes
from tests.engine.harness import EngineCase
from tests.faults.calls import PROJECT
from tests.faults.matrix import fault_for


def test_retries_and_timeouts_cost_no_wall_time(fakes: Fakes, tmp_path: Path) -> None:
    """A lookup that always times out (1 s each, five attempts): backoff asked for in full, nothing slept."""
    case = EngineCase(fakes, tmp_path, timeout="1s")
    fault = fakes.gitlab.faults.add(fault_for(PROJECT, "read-timeout", None))
    started = time.monotonic()
    result = case.run("run-once")
    elapsed = time.monotonic() - started
    case.assert_reported(result)
    assert fault.reached.is_set()
    assert len(fakes.gitlab.calls(PROJECT)) == 5
    # Four backoffs, each asked for in full: within its jittered band [ceiling / 2, ceiling].
    ceilings = [min(MAX_WAIT, BACKOFF_BASE * 2**attempt) for attempt in range(4)]
    assert len(case.pauses.asked) == len(ceilings), case.pauses.asked
    for wait, ceiling in zip(case.pauses.asked, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling, case.pauses.asked
    asked = sum(case.pauses.asked)
    # Over loopback: five 1 s timeouts plus the backoff. Here: neither.
    assert elapsed < asked / 2, (elapsed, case.pauses.asked)
    assert case.pauses.monotonic() >= asked  # the windows measured on it moved as far
