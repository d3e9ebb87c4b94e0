"""The look's drift verdict agrees with what the next run that reads the connection would do (rule 1)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.core import evidence as ev
from rotator.core import rules
from rotator.core.model import (
    Connection,
    Origin,
    Outcome,
    Role,
    RotationRecord,
    Step,
    TargetKey,
    TargetState,
    TokenRecord,
)
from rotator.core.schedule import Due, Situation, decide
from rotator.engine.foresee import Check, Foreseen, next_check
from rotator.engine.look import DRIFT, INFO, OK, WARN, drift_finding


KEY = TargetKey("https://gitlab.example.com", 42, "conn")
AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
#: Our verified push, someone else's write, an unfinished rotation's PATCH and its pre-PATCH hash.
OURS, OTHER, PATCH, PRE = "a" * 64, "b" * 64, "c" * 64, "d" * 64


def _connection(hash_: str) -> Connection:
    return Connection("conn", "c", "gitlab", "access-token", None, "project", hash_)


def _state(verified: str | None, *, frozen: bool = False) -> TargetState:
    return TargetState(KEY, "app", verified_hash=verified, drift_since=AT if frozen else None)


def _token(token_id: int, role: Role, revoke_after: datetime | None = None) -> TokenRecord:
    return TokenRecord(
        KEY, token_id, f"app-{token_id}", Origin.CREATED, role, date(2027, 1, 1), revoke_after=revoke_after
    )


def _held() -> list[TokenRecord]:
    return [_token(7, Role.POSSIBLY_HELD)]


def _rotation(step: Step, pre_hash: str = OURS) -> RotationRecord:
    return RotationRecord(
        "r1", KEY, "app", "schedule", "test", step, Outcome.IN_PROGRESS, "app-x", date(2027, 1, 1), AT,
        pre_hash=pre_hash, patch_hash=PATCH if step is Step.PUSHED else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("observed", "state", "tokens", "check", "level"),
    [
        (OURS, None, [], Check.PUSH, INFO),
        (OURS, _state(None), [], Check.PUSH, INFO),
        (OURS, _state(OURS), [], Check.PUSH, OK),
        (OTHER, _state(OURS), [], Check.PUSH, DRIFT),
        (OTHER, _state(OURS), _held(), Check.PUSH, WARN),
        (OTHER, _state(OURS), _held(), Check.REVOKE, DRIFT),
        (OURS, _state(OURS), _held(), Check.REVOKE, OK),
        (OTHER, _state(OURS, frozen=True), _held(), Check.PUSH, DRIFT),
        (OURS, _state(OURS, frozen=True), [], None, DRIFT),
    ],
)
def test_drift_table(
    observed: str, state: TargetState | None, tokens: list[TokenRecord], check: Check | None, level: str
) -> None:
    """No push yet: info; ours: ok; another: drift, unless a lost push explains it (a push); frozen: drift."""
    found = drift_finding("c", "app", _connection(observed), state, tokens, foreseen=Foreseen(check))
    assert found.level == level


@pytest.mark.parametrize(
    ("observed", "level"), [(PATCH, OK), (OURS, WARN), (OTHER, DRIFT)]
)  # fmt: skip
def test_at_pushed_the_patch_hash_decides(observed: str, level: str) -> None:
    """Stopped at PUSHED: our PATCH is ok (verified next), the pre-PATCH hash lags, any other is drift."""
    rotation = _rotation(Step.PUSHED)
    found = drift_finding(
        "c", "app", _connection(observed), _state(OURS), _held(),
        foreseen=Foreseen(Check.REREAD), unfinished=rotation,
    )  # fmt: skip
    assert found.level == level


@dataclass(frozen=True)
class World:
    """A target as the journal and Infisical hold it; offsets are whole hours from ``AT``."""

    verified: str | None
    observed: str
    frozen: bool
    step: Step | None
    pre_hash: str
    possibly_held: bool
    revoke_after: int | None  # the pending revoke's grace end (None: no pending revoke)
    next_due: int | None  # None: no rule makes the target due
    backoff: int | None
    force: bool
    take_over: bool

    def tokens(self) -> list[TokenRecord]:
        """The journal's tokens: the current one, a possibly-held one, a pending revoke."""
        tokens = [_token(1, Role.CURRENT)]
        if self.possibly_held or self.step in {Step.PUSHING, Step.PUSHED}:
            tokens.append(_token(7, Role.POSSIBLY_HELD))  # a push was sent: its token may be held
        if self.revoke_after is not None:
            tokens.append(_token(2, Role.PENDING_REVOKE, AT + self.revoke_after * HOUR))
        return tokens

    def rotation(self) -> RotationRecord | None:
        """The unfinished rotation, if any."""
        return _rotation(self.step, self.pre_hash) if self.step else None

    def situation(self, at: datetime) -> Situation:
        """The engine's :class:`Situation` for a run at ``at``."""
        due = AT + self.next_due * HOUR if self.next_due is not None else None
        return Situation(
            due=Due(due=due is not None and at >= due, reason="expiring", next_due=due),
            unfinished=self.step is not None,
            frozen=self.frozen,
            holding=False,
            backoff_until=AT + self.backoff * HOUR if self.backoff is not None else None,
            revoke_afters=tuple(t.revoke_after for t in self.tokens() if t.revoke_after),
            tombstones_until=(),
        )


def _frozen_after_the_next_reading_run(w: World) -> bool:
    """Whether the target is frozen after the first run that reads the connection, run by run.

    Runs go hourly from ``AT`` (every instant of a world is on the hour); the first is the
    command's own (``--force``, ``--take-over``). Each does what ``decide()`` says, in the
    engine's order (``Engine._work``): resume (PUSHED re-reads: ``rules.reread_proves``), rotate
    (``rules.before_push``), then revoke (``rules.holds_our_push``). A freeze ends only with a
    verified push. If no run reads the connection, a forced rotation is what will.
    """
    held = any(t.role is Role.POSSIBLY_HELD for t in w.tokens())
    rotation = w.rotation()
    for hours in range(6):
        at = AT + hours * HOUR
        first = hours == 0
        take_over = w.take_over and first
        work = decide(w.situation(at), at, force=w.force and first, take_over=take_over)
        if work.resume and rotation is not None and rotation.step is Step.PUSHED:
            proof = rules.reread_proves(w.observed, rotation, take_over=take_over, at=at, target="app")
            if isinstance(proof, ev.RereadLagging):
                return w.frozen  # the run fails at PUSHED; nothing changes
            return isinstance(proof, ev.RereadOther)  # else verified, or overwritten and pushed afresh
        rolls_forward = work.resume and rotation is not None and rotation.step is Step.PUSHING
        if rolls_forward or work.rotate:
            gate = rules.before_push(w.verified, w.observed, possibly_held=held, take_over=take_over)
            return gate is rules.Gate.DRIFT
        pending = [t for t in w.tokens() if t.role is Role.PENDING_REVOKE]
        if work.revoke and any(t.revoke_after and t.revoke_after <= at for t in pending):
            return w.frozen or not rules.holds_our_push(w.verified, w.observed)
    gate = rules.before_push(w.verified, w.observed, possibly_held=held, take_over=False)
    return w.frozen or gate is rules.Gate.DRIFT


HOURS = st.one_of(st.none(), st.integers(-2, 3))


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """Any target the journal can hold; a frozen one has no unfinished rotation (decide resumes none)."""
    frozen = draw(st.booleans())
    return World(
        verified=draw(st.sampled_from([None, OURS])),
        observed=draw(st.sampled_from([OURS, OTHER, PATCH, PRE])),
        frozen=frozen,
        step=None if frozen else draw(st.sampled_from([None, *Step])),
        pre_hash=draw(st.sampled_from([OURS, PRE])),
        possibly_held=draw(st.booleans()),
        revoke_after=draw(HOURS),
        next_due=draw(HOURS),
        backoff=draw(HOURS),
        force=draw(st.booleans()),
        take_over=draw(st.booleans()),
    )


@given(worlds())
def test_drift_is_shown_exactly_when_the_next_run_would_freeze(w: World) -> None:
    """Invariant: DRIFT iff the next run that reads the connection leaves the target frozen."""
    tokens = w.tokens()
    state = _state(w.verified, frozen=w.frozen)
    foreseen = next_check(w.situation(AT), tokens, w.rotation(), AT, force=w.force, take_over=w.take_over)
    found = drift_finding(
        "c", "app", _connection(w.observed), state, tokens, foreseen=foreseen, unfinished=w.rotation()
    )
    assert (found.level == DRIFT) == _frozen_after_the_next_reading_run(w), (foreseen, found)
    assert found.level != OK or w.observed in {w.verified, PATCH}
    assert "drift" not in found.text or found.level == DRIFT
