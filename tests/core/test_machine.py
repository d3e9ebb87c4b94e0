"""The transition tables: every (state, evidence) pair, legal or not, through :func:`advance`."""

import itertools

from collections import deque
from dataclasses import fields, replace
from datetime import UTC, datetime

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.core import evidence as ev
from rotator.core.errors import ProtocolViolation, RotatorError
from rotator.core.machine import ROLE_TABLE, ROTATION_TABLE, TOKEN_ORIGINS, Action, advance
from rotator.core.model import Outcome, Role, RotationRecord, Step, TokenRecord
from tests.core.samples import (
    PURE,
    ROTATION_KINDS,
    TOKEN_KINDS,
    any_rotation_evidence,
    any_token_evidence,
    rotation_evidence,
    rotations,
    token_evidence,
    tokens,
)


#: Each example walks every (state, evidence kind) pair, so no pair is left to chance.
PAIRS = settings(max_examples=50, deadline=None)
#: Fields only the table (step, outcome) or a closing transition (finished_at, error) may change.
_STATE_FIELDS = {"step", "outcome", "finished_at", "error"}


@settings(PAIRS)
@given(st.data())
def test_every_step_and_evidence_pair_moves_as_the_table_says_or_raises(data: st.DataObject) -> None:
    """An open rotation moves to the entry's step and outcome; a pair without an entry raises."""
    drawn = data.draw(rotations(outcome=Outcome.IN_PROGRESS))
    evidences = {kind: data.draw(rotation_evidence(kind)) for kind in ROTATION_KINDS}
    for step, kind in itertools.product(Step, ROTATION_KINDS):
        record, evidence = replace(drawn, step=step), evidences[kind]
        entry = ROTATION_TABLE.get((step, kind))
        if entry is None:
            with pytest.raises(ProtocolViolation):
                advance(record, evidence)
            continue
        moved, action = advance(record, evidence)
        assert (moved.step, moved.outcome, action) == (entry.to, entry.outcome, entry.action)
        assert (moved.id, moved.key, moved.token_name, moved.planned_at) == (
            record.id,
            record.key,
            record.token_name,
            record.planned_at,
        )
        if entry.outcome is Outcome.IN_PROGRESS:
            assert (moved.finished_at, moved.error) == (record.finished_at, record.error)
        else:
            assert moved.finished_at == evidence.at
            assert moved.error == (getattr(evidence, "note", None) or record.error)


@settings(PURE)
@given(rotations(), any_rotation_evidence)
def test_only_the_evidence_fields_and_the_state_change(
    record: RotationRecord, evidence: ev.RotationEvidence
) -> None:
    """Whatever advance changes beyond step, outcome, finish and error is what the evidence applies."""
    try:
        moved, _ = advance(record, evidence)
    except ProtocolViolation:
        return
    applied = evidence.apply(record)
    for field in fields(RotationRecord):
        if field.name not in _STATE_FIELDS:
            assert getattr(moved, field.name) == getattr(applied, field.name), field.name


@settings(PURE)
@given(st.data(), st.sampled_from([o for o in Outcome if o is not Outcome.IN_PROGRESS]))
def test_a_closed_rotation_takes_no_evidence(data: st.DataObject, outcome: Outcome) -> None:
    """Nothing moves a rotation once it has an outcome: every evidence raises."""
    record = data.draw(rotations(outcome=outcome))
    with pytest.raises(ProtocolViolation, match=outcome.value):
        advance(record, data.draw(any_rotation_evidence))


@settings(PAIRS)
@given(st.data())
def test_every_role_and_evidence_pair_moves_as_the_table_says_or_raises(data: st.DataObject) -> None:
    """A token takes the entry's role; a pair without an entry raises, naming the evidence."""
    drawn = data.draw(tokens())
    evidences = {kind: data.draw(token_evidence(kind)) for kind in TOKEN_KINDS}
    for role, kind in itertools.product(Role, TOKEN_KINDS):
        record, evidence = replace(drawn, role=role), evidences[kind]
        entry = ROLE_TABLE.get((role, kind))
        if entry is None:
            with pytest.raises(ProtocolViolation, match=kind.__name__):
                advance(record, evidence)
            continue
        moved, action = advance(record, evidence)
        assert (moved.role, action) == (entry.to, entry.action)
        assert (moved.key, moved.token_id, moved.name, moved.origin) == (
            record.key,
            record.token_id,
            record.name,
            record.origin,
        )


@settings(PURE)
@given(rotations(outcome=Outcome.IN_PROGRESS), any_token_evidence)
def test_token_evidence_never_moves_a_rotation(record: RotationRecord, evidence: ev.TokenEvidence) -> None:
    """Evidence about a token offered to a rotation raises (the kinds are disjoint)."""
    with pytest.raises(ProtocolViolation):
        advance(record, evidence)  # type: ignore[call-overload]


@settings(PURE)
@given(tokens(), any_rotation_evidence)
def test_rotation_evidence_never_moves_a_token(record: TokenRecord, evidence: ev.RotationEvidence) -> None:
    """Evidence about a rotation offered to a token raises."""
    with pytest.raises(ProtocolViolation):
        advance(record, evidence)  # type: ignore[call-overload]


def test_protocol_violation_is_a_rotator_error() -> None:
    """The violation sits in the error tree, so a run reports it like any other failure."""
    assert issubclass(ProtocolViolation, RotatorError)


def test_every_step_and_outcome_is_reachable_from_planned() -> None:
    """Walking the table from PLANNED reaches every step and every outcome: no dead rows in the enums."""
    seen_steps, seen_outcomes = {Step.PLANNED}, {Outcome.IN_PROGRESS}
    todo = deque([Step.PLANNED])
    while todo:
        step = todo.popleft()
        for (source, _), entry in ROTATION_TABLE.items():
            if source is step:
                seen_outcomes.add(entry.outcome)
                if entry.outcome is Outcome.IN_PROGRESS and entry.to not in seen_steps:
                    seen_steps.add(entry.to)
                    todo.append(entry.to)
                seen_steps.add(entry.to)
    assert seen_steps == set(Step)
    assert seen_outcomes == set(Outcome)


def test_every_role_is_reachable_and_abandoned_among_them() -> None:
    """From the roles a token is born in, the table reaches every role, ABANDONED included."""
    seen = {role for role, _ in TOKEN_ORIGINS}
    todo = deque(seen)
    while todo:
        role = todo.popleft()
        for (source, _), entry in ROLE_TABLE.items():
            if source is role and entry.to not in seen:
                seen.add(entry.to)
                todo.append(entry.to)
    assert seen == set(Role)
    assert (Role.CANDIDATE, ev.ExpiredUnrevoked) in ROLE_TABLE


def test_a_stored_push_never_licenses_revoking_the_new_token() -> None:
    """Architecture §1: after PATCH 200 (PUSHED) no transition revokes the new token."""
    after_store = [
        entry for (step, _), entry in ROTATION_TABLE.items() if step in (Step.PUSHED, Step.VERIFIED)
    ]
    assert after_store
    assert all(entry.action is not Action.REVOKE_NEW for entry in after_store)


def test_only_a_definite_refusal_sends_a_pushing_rotation_back() -> None:
    """From PUSHING, REVOKE_NEW is licensed by a refused PATCH alone; unknown answers roll forward."""
    revoking = {
        kind
        for (step, kind), e in ROTATION_TABLE.items()
        if step is Step.PUSHING and e.action is Action.REVOKE_NEW
    }
    assert revoking == {ev.PatchRefused}
    for kind in (ev.PatchUnknown, ev.PatchNotLanded, ev.CrashFound):
        assert ROTATION_TABLE[Step.PUSHING, kind].action is Action.ROLL_FORWARD


def test_a_held_token_is_revoked_only_after_a_verified_push_retired_it() -> None:
    """POSSIBLY_HELD and CURRENT never go straight to REVOKED: only through PENDING_REVOKE."""
    for role in (Role.POSSIBLY_HELD, Role.CURRENT):
        targets = {entry.to for (source, _), entry in ROLE_TABLE.items() if source is role}
        assert Role.REVOKED not in targets
        assert targets <= {Role.PENDING_REVOKE, Role.CURRENT, Role.POSSIBLY_HELD, Role.CANDIDATE}
    assert ROLE_TABLE[Role.POSSIBLY_HELD, ev.Retired].to is Role.PENDING_REVOKE


def test_finished_roles_take_no_evidence_but_a_fresh_listing() -> None:
    """ABANDONED and REVOKED move only when a re-check lists the token active again."""
    for done in (Role.ABANDONED, Role.REVOKED):
        assert {kind for role, kind in ROLE_TABLE if role is done} == {ev.RevokeProven, ev.NoAccess}


@given(tokens(Role.ABANDONED))
def test_an_abandoned_token_listed_active_again_is_revoked_or_tracked_live(token: TokenRecord) -> None:
    """A token recorded abandoned that a tombstone re-check finds active is revoked, or tracked as live."""
    at = datetime(2026, 3, 4, tzinfo=UTC)
    revoked, _ = advance(token, ev.RevokeProven(at, "DELETE 204"))
    assert (revoked.role, revoked.revoked_at, revoked.evidence) == (Role.REVOKED, at, "DELETE 204")
    tracked, action = advance(token, ev.NoAccess(at))
    assert tracked.role is Role.CANDIDATE
    assert tracked.no_access_since is not None
    assert action is Action.RETRY_NEXT_RUN
