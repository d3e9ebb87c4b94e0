"""The protocol tables: complete, consistent, the only way the engine changes a state, and documented."""

import ast
import itertools

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from rotator.core import evidence as ev
from rotator.core.machine import ROLE_TABLE, ROTATION_TABLE, TOKEN_ORIGINS
from rotator.core.model import Change, Lease, Outcome, Role, Step, TargetKey
from rotator.core.protocol import PROTOCOL, RULES, diagram, replace_block, role_rows, rotation_rows
from rotator.journal.sqlite import SQLiteJournal
from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, Harness, patch_by_hand


DOC = Path(__file__).resolve().parent.parent / "docs" / "rotation.md"


def test_every_step_appears_once_in_order_and_leads_to_the_next() -> None:
    """The table lists every Step once, in order, each leading to the one after and the last to none."""
    assert [rule.step for rule in PROTOCOL] == list(Step)
    assert set(RULES) == set(Step)
    for rule, following in itertools.pairwise(PROTOCOL):
        assert rule.next_step is following.step
    assert PROTOCOL[-1].next_step is None


def test_only_an_unknown_push_rolls_forward() -> None:
    """A crash at PUSHING (outcome unknown) is the one resume that must be followed by a fresh rotation."""
    assert [rule.step for rule in PROTOCOL if rule.rolls_forward] == [Step.PUSHING]


def test_docs_rotation_md_holds_the_current_diagram() -> None:
    """docs/rotation.md's generated block is current (regenerate: python -m rotator.core.protocol)."""
    document = DOC.read_text()
    assert diagram() in document
    assert replace_block(document) == document


def test_each_resume_closes_the_stopped_rotation_as_the_protocol_says() -> None:
    """PLANNED and CREATED roll back, PUSHING is superseded, PUSHED and VERIFIED carry on."""
    outcomes = {rule.step: rule.resume_outcome for rule in PROTOCOL}
    assert outcomes == {
        Step.PLANNED: Outcome.ROLLED_BACK,
        Step.CREATED: Outcome.ROLLED_BACK,
        Step.PUSHING: Outcome.SUPERSEDED,
        Step.PUSHED: None,
        Step.VERIFIED: None,
    }


def test_the_step_rules_agree_with_the_transition_table() -> None:
    """Each step's forward call is a table edge, and its resume outcome is the table's CrashFound entry."""
    for rule in PROTOCOL:
        forward = {e.to for (step, _), e in ROTATION_TABLE.items() if step is rule.step and e.to is not step}
        if rule.next_step is not None:
            assert rule.next_step in forward
        crash = ROTATION_TABLE.get((rule.step, ev.CrashFound))
        assert (crash is None) == (rule.step is Step.VERIFIED)


def test_every_table_entry_appears_in_the_generated_document() -> None:
    """Every rotation and token transition has its row and its diagram edge in docs/rotation.md."""
    document = DOC.read_text()
    for row in (*rotation_rows(), *role_rows()):
        assert row in document
    for (step, kind), entry in ROTATION_TABLE.items():
        assert f"| {step.value} | `{kind.__name__}` |" in document
        assert f"{step.value} --> " in document
        assert entry.says in document
    for (role, token_kind), role_entry in ROLE_TABLE.items():
        assert f"| {role.value} | `{token_kind.__name__}` |" in document
        assert f"    {role.value} --> {role_entry.to.value}: {role_entry.says}" in document


#: Calls that change a state without the table: ``replace(record, step=…)`` and the like.
_STATE_KEYWORDS = {"step", "role", "outcome"}
ENGINE = Path(__file__).resolve().parent.parent / "rotator" / "engine"


def test_the_engine_never_sets_a_step_role_or_outcome_itself() -> None:
    """No ``replace(..., step=/role=/outcome=)`` in rotator/engine: only the core's advance changes them."""
    found = []
    for path in sorted(ENGINE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            keywords = {k.arg for k in node.keywords if k.arg} & _STATE_KEYWORDS
            if name == "replace" and keywords:
                found.append(f"{path.name}:{node.lineno} replace({', '.join(sorted(keywords))}=...)")
    assert found == []


class Witness:
    """Every journal write of the runs in this process, replayed as state changes per rotation and token."""

    def __init__(self) -> None:
        """Nothing written yet."""
        self.rotations: dict[str, list[tuple[Step, Outcome]]] = {}
        self.roles: dict[tuple[TargetKey, int], list[Role]] = {}

    def saw(self, change: Change) -> None:
        """Note the states one write records (a repeated state is one state, not a transition)."""
        if change.rotation is not None:
            states = self.rotations.setdefault(change.rotation.id, [])
            state = (change.rotation.step, change.rotation.outcome)
            if not states or states[-1] != state:
                states.append(state)
        for token in change.tokens:
            roles = self.roles.setdefault((token.key, token.token_id), [])
            if not roles or roles[-1] is not token.role:
                roles.append(token.role)

    def strays(self) -> list[str]:
        """Every recorded state change that is not an entry of the tables."""
        edges = {(s, e.to, e.outcome) for (s, _), e in ROTATION_TABLE.items()}
        role_edges = {(r, e.to) for (r, _), e in ROLE_TABLE.items()}
        # A token is born a candidate (or adopted as current) and may take one step before its first write.
        born = {role for role, _ in TOKEN_ORIGINS} | {
            e.to for (r, _), e in ROLE_TABLE.items() if r is Role.CANDIDATE
        }
        found = []
        for rotation, states in self.rotations.items():
            if states[0] != (Step.PLANNED, Outcome.IN_PROGRESS):
                found.append(f"rotation {rotation} began at {states[0]}")
            for (step, _), (to, outcome) in itertools.pairwise(states):
                if (step, to, outcome) not in edges:
                    found.append(f"rotation {rotation}: {step} -> {to} ({outcome})")
        for token, roles in self.roles.items():
            if roles[0] not in born:
                found.append(f"token {token[1]} born {roles[0]}")
            found += [
                f"token {token[1]}: {a} -> {b}"
                for a, b in itertools.pairwise(roles)
                if (a, b) not in role_edges
            ]
        return found


@pytest.fixture
def witness(monkeypatch: pytest.MonkeyPatch) -> Witness:
    """A witness of every SQLite journal write made in this process (those carrying a renewal too)."""
    seen = Witness()
    write, write_renewing = SQLiteJournal.write, SQLiteJournal.write_renewing

    def witnessed(journal: SQLiteJournal, lease: Lease, change: Change) -> Change:
        stored = write(journal, lease, change)
        seen.saw(change)
        return stored

    def witnessed_renewing(
        journal: SQLiteJournal, lease: Lease, change: Change, now: datetime, ttl: timedelta
    ) -> tuple[Change, Lease]:
        answer = write_renewing(journal, lease, change, now, ttl)
        seen.saw(change)
        return answer

    monkeypatch.setattr(SQLiteJournal, "write", witnessed)
    monkeypatch.setattr(SQLiteJournal, "write_renewing", witnessed_renewing)
    return seen


_PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"


def test_every_transition_the_engine_takes_is_a_table_entry(
    fakes: Fakes, tmp_path: Path, infisical: httpx.Client, witness: Witness
) -> None:
    """A rotation, a refused PATCH, an unknown PATCH, drift, revokes: every state change is a table entry."""
    h = Harness(fakes, tmp_path, grace="0s")
    assert h.run("run-once").code == 0  # adopt, create, push, verify, revoke
    fakes.infisical.faults.fail(_PATCH, 422)
    assert h.run("run-once", "--force").code == 1  # refused: back to CREATED, revoked
    fakes.infisical.faults.fail(_PATCH, 503, times=None)
    assert h.run("run-once", "--force").code == 1  # unknown, twice: superseded, possibly held
    fakes.infisical.faults.clear()
    assert h.run("run-once", "--force").code == 0  # verified: the possibly-held tokens retire
    fakes.clock.advance(timedelta(hours=1))
    assert h.run("run-once").code == 0  # their settle time has passed: revoked
    other = fakes.gitlab.test_only_token(h.active_tokens(0)[-1])
    assert patch_by_hand(infisical, fakes.gitlab.url, CONNECTIONS[0], other.value).status_code == 200
    assert h.run("run-once", "--force").code == 1  # drift
    assert h.run("rotate", "app-deploy", "--take-over").code == 0
    steps = {state for states in witness.rotations.values() for state in states}
    outcomes = {outcome for _, outcome in steps}
    assert {Outcome.SUCCEEDED, Outcome.FAILED, Outcome.SUPERSEDED} <= outcomes
    roles = {role for roles in witness.roles.values() for role in roles}
    assert {Role.CANDIDATE, Role.POSSIBLY_HELD, Role.CURRENT, Role.PENDING_REVOKE, Role.REVOKED} <= roles
    assert witness.strays() == []
