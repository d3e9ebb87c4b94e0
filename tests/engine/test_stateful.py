"""The fault campaign's state machine through the engine in process: runs, crashes, faults, time, a writer.

The rules are :class:`tests.faults.test_stateful.RotatorMachine`'s; a run is the engine over the
in-process transports (:class:`~tests.engine.harness.EngineCase`), a crash stops it dead at the
crash hook's point, and a SIGKILL during a call stops it the moment the request reaches the fake.
Without processes and real waits an example takes a fraction of a second, so this machine runs
more of them than the one over the command (``FAULT_CAMPAIGN_EXAMPLES`` scales both).
"""

import tempfile

from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest

from hypothesis import strategies as st
from hypothesis.stateful import rule

from rotator.testing import Fault, start_fakes
from tests.engine.harness import EngineCase
from tests.faults.calls import server_for
from tests.faults.test_stateful import EXAMPLES, ROUTES, RotatorMachine, machine_settings


class EngineMachine(RotatorMachine):
    """One target, grace 30 min, 1 s timeouts; fresh fakes and an empty journal per example."""

    # Daily, as a CronJob usually runs (runs cost nothing here): with weekly runs, three refused
    # reads in the last week before expiry (rotate_before 7d) let the token expire between runs,
    # the schedule's doing, not rotator's (found by this machine, example kept in its database).
    run_every = timedelta(days=1)

    def __init__(self) -> None:
        """Start the fakes and write the config; the runs go through the engine."""
        super(RotatorMachine, self).__init__()
        self.stack = ExitStack()
        fakes = self.stack.enter_context(start_fakes())
        folder = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        self.case = EngineCase(fakes, folder, timeout="1s", grace="30m")
        self.drifted = False
        self.since_run = timedelta()

    @rule(route=st.sampled_from(ROUTES), applied=st.booleans())
    def killed_during_a_call(self, route: str, applied: bool) -> None:
        """The run dies while ROUTE is in flight (applied or not), if the run makes that call."""
        assert isinstance(self.case, EngineCase)
        server = server_for(self.case.fakes, route)
        fault = server.faults.add(Fault(route, "hang_after" if applied else "hang", seconds=2))
        result = self.case.kill_at(fault, "run-once")
        server.faults.clear()
        self._outcome(result.code, result.stdout)


class LongEngineMachine(EngineMachine):
    """The same machine, many more examples: the exhaustive job's run."""


EngineMachine.TestCase.settings = machine_settings(EXAMPLES * 3)
test_engine_under_interleaved_faults = EngineMachine.TestCase
test_engine_under_interleaved_faults.__doc__ = "Runs, crashes, faults, time and a foreign writer interleave."
LongEngineMachine.TestCase.settings = machine_settings(EXAMPLES * 10)
LongEngineMachine.TestCase.pytestmark = [pytest.mark.exhaustive, pytest.mark.timeout(3600)]  # type: ignore[attr-defined]
test_engine_under_interleaved_faults_at_length = LongEngineMachine.TestCase
test_engine_under_interleaved_faults_at_length.__doc__ = (
    "The engine's state machine with ten times the examples."
)
