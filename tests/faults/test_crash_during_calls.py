"""SIGKILL during every upstream call, before the server applies it and after (architecture §1, §5)."""

from pathlib import Path

import pytest

from rotator.testing import Fakes, Fault
from tests.faults import ledger
from tests.faults.calls import CALLS, Call
from tests.faults.campaign import Case


pytestmark = pytest.mark.slow


@pytest.mark.parametrize("applied", [False, True], ids=["before-applied", "after-applied"])
@pytest.mark.parametrize("call", CALLS, ids=[c.label.replace(" ", "-") for c in CALLS])
def test_killed_during_a_call_converges(fakes: Fakes, tmp_path: Path, call: Call, applied: bool) -> None:
    """Killed while CALL is in flight (applied or not), later runs converge with no lockout or leak."""
    case = Case(fakes, tmp_path)
    call.reach(case)
    fault = call.arm(case, Fault(call.route, "hang_after" if applied else "hang", seconds=2))
    case.kill_at(fault, "run-once")
    ledger.count("faults")
    case.converge()
