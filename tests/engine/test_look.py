"""The look's drift verdict agrees with the rule a run applies before a push (rule 1)."""

from datetime import UTC, date, datetime

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.core import rules
from rotator.core.model import Connection, Origin, Role, TargetKey, TargetState, TokenRecord
from rotator.engine.look import DRIFT, INFO, OK, WARN, drift_finding


KEY = TargetKey("https://gitlab.example.com", 42, "conn")
AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
OURS, OTHER = "a" * 64, "b" * 64


def _connection(hash_: str) -> Connection:
    return Connection("conn", "c", "gitlab", "access-token", None, "project", hash_)


def _state(verified: str | None, *, frozen: bool = False) -> TargetState:
    return TargetState(KEY, "app", verified_hash=verified, drift_since=AT if frozen else None)


def _held() -> list[TokenRecord]:
    return [TokenRecord(KEY, 7, "app-x", Origin.CREATED, Role.POSSIBLY_HELD, date(2027, 1, 1))]


@pytest.mark.parametrize(
    ("observed", "state", "tokens", "level"),
    [
        (OURS, None, [], INFO),
        (OURS, _state(None), [], INFO),
        (OURS, _state(OURS), [], OK),
        (OTHER, _state(OURS), [], DRIFT),
        (OTHER, _state(OURS), _held(), WARN),
        (OTHER, _state(OURS, frozen=True), _held(), DRIFT),
    ],
)
def test_drift_table(observed: str, state: TargetState | None, tokens: list[TokenRecord], level: str) -> None:
    """No push yet: info; ours: ok; another hash: drift, unless a lost push may explain it; frozen: drift."""
    assert drift_finding("connection conn", "app", _connection(observed), state, tokens).level == level


@given(
    verified=st.sampled_from([None, OURS, OTHER]),
    observed=st.sampled_from([OURS, OTHER]),
    possibly_held=st.booleans(),
    frozen=st.booleans(),
)
def test_drift_is_shown_exactly_when_a_run_would_freeze(
    verified: str | None, observed: str, possibly_held: bool, frozen: bool
) -> None:
    """Invariant: DRIFT iff frozen on another hash or the pre-push gate says drift; ok only on ours."""
    state = _state(verified, frozen=frozen)
    found = drift_finding("c", "app", _connection(observed), state, _held() if possibly_held else [])
    gate = rules.before_push(verified, observed, possibly_held=possibly_held, take_over=False)
    expected = (frozen and observed != verified) or gate is rules.Gate.DRIFT
    assert (found.level == DRIFT) == expected
    assert found.level != OK or observed == verified
    assert "drift" not in found.text or found.level == DRIFT
