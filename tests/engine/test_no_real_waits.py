"""The engine harness waits for nothing: backoff and client timeouts are asked for, never slept."""

import time

from pathlib import Path

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
    asked = sum(case.pauses.asked)
    assert asked >= 5, case.pauses.asked  # four backoffs at least
    # Over loopback: five 1 s timeouts plus the backoff. Here: neither.
    assert elapsed < asked / 2, (elapsed, case.pauses.asked)
    assert case.pauses.monotonic() >= asked  # the windows measured on it moved as far
