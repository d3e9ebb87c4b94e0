"""Malformed upstream answers through the engine: an error naming target, step and status; nothing revoked."""

from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.engine.harness import EngineCase
from tests.faults import ledger
from tests.faults.calls import server_for
from tests.faults.test_malformed_bodies import BODIES, connection_view, without_hash


@pytest.mark.parametrize("case_name", list(BODIES))
def test_a_malformed_answer_is_a_clear_error_and_revokes_nothing(
    fakes: Fakes, tmp_path: Path, case_name: str
) -> None:
    """Every answer of ROUTE is malformed: exit 1 naming target, step and status; the old token lives."""
    route, status, body = BODIES[case_name]
    case = EngineCase(fakes, tmp_path)
    if body == "without-hash":
        body = without_hash(fakes)
    elif body == "unchanged":
        body = connection_view(fakes)
    fault = server_for(fakes, route).faults.fail(route, status, body=body, times=None)
    result = case.run("run-once")
    assert fault.reached.is_set()
    ledger.count("bad_inputs")
    case.assert_reported(result)
    assert case.adopted() in case.h.active_tokens(0), "the old token was revoked"
    case.converge()
