"""A Hypothesis state machine interleaving runs, crashes, failing calls, time and a foreign writer.

Every rule runs the real ``rotator`` process (or changes the world around it); :class:`Case`
checks the invariants after each run, and the teardown proves the target still converges.
``FAULT_CAMPAIGN_EXAMPLES`` sets the number of examples. The exhaustive tier runs it; the fast tier
runs its rules through the engine in process (``tests/engine/test_stateful.py``).
"""

import os
import signal
import tempfile
import time

from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from rotator.testing import Fault, start_fakes
from tests.faults import ledger
from tests.faults.calls import CALLS, server_for
from tests.faults.campaign import CRASHED, Case
from tests.faults.matrix import MODES, fault_for


pytestmark = pytest.mark.slow
CRASH_POINTS = ("PLANNED", "CREATED", "PUSHING", "PUSHED", "VERIFIED", "GRACE-CHECKED", "REVOKED")
ROUTES = sorted({c.route for c in CALLS})
EXAMPLES = int(os.environ.get("FAULT_CAMPAIGN_EXAMPLES", "10"))


class RotatorMachine(RuleBasedStateMachine):
    """One target, grace 30 min, 1 s timeouts; fresh fakes and state per example."""

    #: The longest gap between two runs when time jumps (a CronJob's schedule). Daily, as the
    #: engine's machine: with weekly runs, three refused logins or reads in the last week before
    #: expiry (rotate_before 7d) let the token expire between runs, the schedule's doing, not
    #: rotator's (found as a "lockout" by this machine: DELETE 400, then login 400 three times).
    run_every = timedelta(days=1)

    def __init__(self) -> None:
        """Start the fakes and write the config."""
        super().__init__()
        self.stack = ExitStack()
        fakes = self.stack.enter_context(start_fakes())
        folder = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        self.case = Case(fakes, folder, timeout="1s", grace="30m")
        self.drifted = False
        self.since_run = timedelta()  # a CronJob runs at least daily; tokens live 30 days

    def teardown(self) -> None:
        """Whatever happened, the target converges once faults stop (after a take-over if drifted)."""
        try:
            if self.drifted:
                self.case.fakes.gitlab.faults.clear()
                self.case.fakes.infisical.faults.clear()
                self.case.fakes.clock.advance(timedelta(hours=5))
                taken = self.case.run("rotate", "app-deploy", "--take-over")
                assert taken.code == 0, taken.stdout + taken.stderr
            self.case.converge()
        finally:
            self.stack.close()

    def _outcome(self, code: int, stdout: str) -> None:
        self.since_run = timedelta()
        assert code in {0, 1, CRASHED}, stdout
        if code == 1:
            # Every failing target is named at the start of its line, with the reason.
            assert any(line.startswith("app-deploy: ") for line in stdout.splitlines()), stdout

    @rule()
    def run_once(self) -> None:
        """A scheduled run."""
        result = self.case.run("run-once")
        self._outcome(result.code, result.stdout)

    @rule()
    def rotate_now(self) -> None:
        """An on-demand rotation."""
        result = self.case.run("rotate", "app-deploy")
        self._outcome(result.code, result.stdout)

    @rule(point=st.sampled_from(CRASH_POINTS))
    def crash_after(self, point: str) -> None:
        """A run that dies right after recording POINT, if it gets there."""
        result = self.case.run("run-once", crash_after=point)
        self._outcome(result.code, result.stdout)

    @rule(route=st.sampled_from(ROUTES), applied=st.booleans())
    def killed_during_a_call(self, route: str, applied: bool) -> None:
        """SIGKILL the run while ROUTE is in flight (applied or not), if the run makes that call."""
        server = server_for(self.case.fakes, route)
        fault = server.faults.add(Fault(route, "hang_after" if applied else "hang", seconds=2))
        process = self.case.start("run-once")
        while process.poll() is None and not fault.reached.is_set():
            time.sleep(0.01)
        if fault.reached.is_set():
            process.send_signal(signal.SIGKILL)
            ledger.count("crashes")
        server.faults.clear()
        result = self.case.finish(process)
        self.since_run = timedelta()
        if result.code != -signal.SIGKILL:
            self._outcome(result.code, result.stdout)

    @rule(route=st.sampled_from(ROUTES), mode=st.sampled_from(list(MODES)), times=st.sampled_from([1, 3]))
    def fail_call(self, route: str, mode: str, times: int) -> None:
        """Arm MODE on the next TIMES requests to ROUTE (later runs may meet it)."""
        server_for(self.case.fakes, route).faults.add(fault_for(route, mode, times))
        ledger.count("faults")

    @rule(minutes=st.sampled_from([1, 11, 16, 31, 61, 241, 60 * 24 * 21]))
    def advance_clock(self, minutes: int) -> None:
        """Time passes: a lease, the settle time, grace, a backoff, or weeks (with a daily run)."""
        step, week = timedelta(minutes=minutes), self.run_every
        # A run at least every day, as a CronJob's: without one, expiry would be the test's
        # doing. One run before a three-week step was not enough: a killed run's lease made it
        # "busy", and the adopted token expired in the gap (found by the engine's machine; the
        # command's machine fails the same way on that example).
        while self.since_run + step > week:
            gap = week - self.since_run
            self.case.fakes.clock.advance(gap)
            step -= gap
            self.run_once()
        self.case.fakes.clock.advance(step)
        self.since_run += step

    @rule()
    def someone_else_writes_the_connection(self) -> None:
        """A person fixes things by hand: a new token of their own, pushed into the connection."""
        self.case.foreign_write()
        self.drifted = True

    @precondition(lambda self: self.drifted)
    @rule()
    def operator_takes_over(self) -> None:
        """The operator accepts the hand-made token; rotator rotates from it."""
        result = self.case.run("rotate", "app-deploy", "--take-over")
        self._outcome(result.code, result.stdout)
        if result.code == 0 and "busy" not in result.stdout:  # busy: a crashed run's lease still holds
            self.drifted = False


def machine_settings(examples: int) -> settings:
    """Hypothesis's settings for a machine run of ``examples`` examples of up to 15 steps."""
    return settings(
        max_examples=examples,
        stateful_step_count=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


RotatorMachine.TestCase.settings = machine_settings(EXAMPLES)
# Each example runs a dozen processes: far past the suite's per-test timeout, by design. The fast
# tier runs the same rules through the engine in process (tests/engine/test_stateful.py), with
# three times the examples; this one keeps real processes, real SIGKILLs and real sockets.
RotatorMachine.TestCase.pytestmark = [pytest.mark.exhaustive, pytest.mark.timeout(1800)]  # type: ignore[attr-defined]
test_rotator_under_interleaved_faults = RotatorMachine.TestCase
test_rotator_under_interleaved_faults.__doc__ = "Runs, crashes, faults, time and a foreign writer interleave."
