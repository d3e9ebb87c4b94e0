"""Connection refused through the engine: an upstream with nothing listening, for one run or several."""

from datetime import timedelta
from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.engine.harness import EngineCase
from tests.faults import ledger
from tests.faults.calls import Call


@pytest.mark.parametrize(
    "runs", [1, pytest.param(3, marks=pytest.mark.exhaustive)], ids=["once", "persistent"]
)
@pytest.mark.parametrize("phase", ["first", "grace", "recovery"])
@pytest.mark.parametrize("upstream", ["gitlab", "infisical"])
def test_a_refused_upstream_is_reported_and_converges(
    fakes: Fakes, tmp_path: Path, upstream: str, phase: str, runs: int
) -> None:
    """UPSTREAM refuses connections for RUNS runs in PHASE: exit 1 naming it, nothing lost, then converge."""
    case = EngineCase(fakes, tmp_path, timeout="1s")
    Call(f"refused {upstream}", "", phase).reach(case)
    with getattr(fakes, upstream).refusing():
        for _ in range(runs):
            result = case.run("run-once")
            case.assert_reported(result)
            assert any(m["upstream"] == upstream for m in case.failure_lines(result)), result.stdout
            ledger.count("faults")
            fakes.clock.advance(timedelta(hours=4, minutes=1))
    case.converge(cli=False)
