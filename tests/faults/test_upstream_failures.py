"""Upstream failures through the whole ``run-once`` command: a sample of the failure matrix's modes."""

from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.faults import ledger
from tests.faults.calls import Call, kind_calls
from tests.faults.campaign import Case
from tests.faults.matrix import expected_exit, fault_for


pytestmark = pytest.mark.slow

#: The modes run through the whole command: a refusal, a lost answer, and an answer that never comes
#: over a real socket (the client's own timeout). The whole matrix (every mode, once and
#: persistently) runs through the engine in process (tests/engine/test_failure_matrix.py); these
#: keep the command's own path under it: the SQLite journal scanned for token values, the printed
#: report, the exit code.
CLI_MODES = ("403", "dropped-after-applied", "read-timeout")


@pytest.mark.parametrize("mode", CLI_MODES)
@pytest.mark.parametrize(("kind", "call"), kind_calls())
def test_a_failing_call_is_reported_and_converges(
    fakes: Fakes, tmp_path: Path, kind: str, call: Call, mode: str
) -> None:
    """CALL fails once with MODE: no lockout, no leak, exit 1 naming target/step/status, then convergence.

    For each target kind (the group and service-account variants in the exhaustive tier).
    """
    case = Case(fakes, tmp_path, timeout="1s", kind=kind)
    call.reach(case)
    fault = call.arm(case, fault_for(call.route, mode, 1))
    result = case.run("run-once")
    assert fault.reached.is_set(), f"{call.label} was never made: {result.stdout}"
    ledger.count("faults")
    if result.code != 0:
        case.assert_reported(result)
    assert result.code == expected_exit(call, mode, 1), result.stdout
    case.converge(cli=False)
