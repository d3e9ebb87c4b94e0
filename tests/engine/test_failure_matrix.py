"""Every failure mode of every upstream call, once and persistently, through the engine in process."""

from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.engine.harness import EngineCase
from tests.faults import ledger
from tests.faults.calls import CALLS, Call
from tests.faults.matrix import MODES, expected_exit, fault_for


@pytest.mark.parametrize(
    "times", [1, pytest.param(None, marks=pytest.mark.exhaustive)], ids=["once", "persistent"]
)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("call", CALLS, ids=[c.label.replace(" ", "-") for c in CALLS])
def test_a_failing_call_is_reported_and_converges(
    fakes: Fakes, tmp_path: Path, call: Call, mode: str, times: int | None
) -> None:
    """CALL fails with MODE: no lockout, no leak, exit 1 naming target/step/status, then convergence."""
    case = EngineCase(fakes, tmp_path, timeout="1s")
    call.reach(case)
    fault = call.arm(case, fault_for(call.route, mode, times))
    result = case.run("run-once")
    assert fault.reached.is_set(), f"{call.label} was never made: {result.stdout}"
    ledger.count("faults")
    if result.code != 0:
        case.assert_reported(result)
    assert result.code == expected_exit(call, mode, times), result.stdout
    case.converge(cli=False)
