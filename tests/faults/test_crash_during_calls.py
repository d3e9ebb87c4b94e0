"""SIGKILL during every upstream call, before the server applies it and after (architecture §1, §5).

For each target kind; the group and service-account variants run in the exhaustive tier.
"""

from pathlib import Path

import pytest

from rotator.testing import Fakes, Fault
from tests.faults import ledger
from tests.faults.calls import Call, kind_calls
from tests.faults.campaign import Case


pytestmark = pytest.mark.slow


@pytest.mark.parametrize("applied", [False, True], ids=["before-applied", "after-applied"])
@pytest.mark.parametrize(("kind", "call"), kind_calls())
def test_killed_during_a_call_converges(
    fakes: Fakes, tmp_path: Path, kind: str, call: Call, applied: bool
) -> None:
    """Killed while CALL is in flight (applied or not), later runs converge with no lockout or leak."""
    case = Case(fakes, tmp_path, kind=kind)
    call.reach(case)
    fault = call.arm(case, Fault(call.route, "hang_after" if applied else "hang", seconds=2))
    case.kill_at(fault, "run-once")
    ledger.count("faults")
    case.converge()
