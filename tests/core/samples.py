"""Hypothesis strategies for the core's values: records in any state, evidence of every kind."""

from dataclasses import fields
from datetime import UTC, date, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st

from rotator.core import evidence as ev
from rotator.core.model import Origin, Outcome, Role, RotationRecord, Step, TargetKey, TokenRecord


#: The core's properties: no per-example deadline (a loaded CI machine must not flake them), few examples
#: (the whole folder stays under ten seconds).
PURE = settings(deadline=None, max_examples=40)
KEY = TargetKey("https://gitlab.example.com", 42, "3c90c3cc-0d44-4b50-8888-8dd25736052a")
OTHER = TargetKey("https://gitlab.example.com", 43, "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")
T0 = datetime(2026, 1, 1, tzinfo=UTC)

ROTATION_KINDS: tuple[type[ev.RotationEvidence], ...] = (
    ev.CreateAnswered,
    ev.ExpiryCapped,
    ev.CreateRefused,
    ev.CreateUnknown,
    ev.SelfCheckPassed,
    ev.SelfCheckFailed,
    ev.PatchStored,
    ev.PatchRefused,
    ev.RefusalUndone,
    ev.PatchUnknown,
    ev.PatchNotLanded,
    ev.RereadSame,
    ev.RereadLagging,
    ev.RereadFailed,
    ev.RereadOther,
    ev.RereadOverwritten,
    ev.CrashFound,
    ev.TargetRemoved,
)
TOKEN_KINDS: tuple[type[ev.TokenEvidence], ...] = (
    ev.PushSent,
    ev.PushAnswered,
    ev.PushRejected,
    ev.PushVerified,
    ev.Retired,
    ev.RevokeProven,
    ev.NoAccess,
    ev.ExpiredUnrevoked,
)

instants = st.integers(min_value=0, max_value=400 * 24 * 3600).map(lambda s: T0 + timedelta(seconds=s))
days = st.integers(min_value=0, max_value=400).map(lambda d: date(2026, 1, 1) + timedelta(days=d))
hashes = st.text("0123456789abcdef", min_size=1, max_size=8)
notes = st.text(max_size=20)
durations = st.integers(min_value=0, max_value=30 * 24 * 3600).map(lambda s: timedelta(seconds=s))

#: A strategy per evidence field name (the same name has the same meaning in every kind).
FIELDS: dict[str, st.SearchStrategy[object]] = {
    "at": instants,
    "token_id": st.integers(1, 10**6),
    "expires_at": st.none() | days,
    "requested_expiry": days,
    "hash": hashes,
    "note": notes,
    "line": notes,
    "evidence": notes,
    "revoke_after": instants,
    "by": st.none() | notes,
}


def evidence_of(kind: type[object]) -> st.SearchStrategy[object]:
    """Any evidence of ``kind``, each field drawn from :data:`FIELDS`."""
    return st.builds(kind, **{f.name: FIELDS[f.name] for f in fields(kind)})  # type: ignore[arg-type]


def rotation_evidence(kind: type[ev.RotationEvidence]) -> st.SearchStrategy[ev.RotationEvidence]:
    """Any rotation evidence of ``kind``."""
    return evidence_of(kind)  # type: ignore[return-value]


def token_evidence(kind: type[ev.TokenEvidence]) -> st.SearchStrategy[ev.TokenEvidence]:
    """Any token evidence of ``kind``."""
    return evidence_of(kind)  # type: ignore[return-value]


any_rotation_evidence = st.sampled_from(ROTATION_KINDS).flatmap(rotation_evidence)
any_token_evidence = st.sampled_from(TOKEN_KINDS).flatmap(token_evidence)


@st.composite
def rotations(draw: st.DrawFn, step: Step | None = None, outcome: Outcome | None = None) -> RotationRecord:
    """A rotation record at ``step`` with ``outcome`` (any, when not given)."""
    planned = draw(instants)
    return RotationRecord(
        id=draw(st.uuids()).hex,
        key=KEY,
        target="app-deploy",
        trigger=draw(st.sampled_from(["due", "forced", "expiring"])),
        actor="t",
        step=step if step is not None else draw(st.sampled_from(list(Step))),
        outcome=outcome if outcome is not None else draw(st.sampled_from(list(Outcome))),
        token_name="app-deploy-20260101-abcdef12",
        requested_expiry=draw(days),
        planned_at=planned,
        old_token_id=draw(st.none() | st.integers(1, 10**6)),
        new_token_id=draw(st.none() | st.integers(1, 10**6)),
        pre_hash=draw(st.none() | hashes),
        patch_hash=draw(st.none() | hashes),
        error=draw(st.none() | notes),
    )


@st.composite
def tokens(draw: st.DrawFn, role: Role | None = None) -> TokenRecord:
    """A tracked token in ``role`` (any, when not given)."""
    return TokenRecord(
        KEY,
        draw(st.integers(1, 10**6)),
        "app-deploy-20260101-abcdef12",
        draw(st.sampled_from(list(Origin))),
        role if role is not None else draw(st.sampled_from(list(Role))),
        draw(st.none() | days),
        retired_at=draw(st.none() | instants),
        revoke_after=draw(st.none() | instants),
        no_access_since=draw(st.none() | instants),
    )
