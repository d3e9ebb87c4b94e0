"""The rotation protocol in words and pictures: each step's record and call, both transition tables.

:mod:`rotator.core.machine` holds the transitions; this module adds what each step records, the
call it licenses and the words a resumed rotation keeps, and draws both tables for
``docs/rotation.md`` (``python -m rotator.core.protocol``; a test fails when the document is
stale, and another when an entry of either table is missing from it). Core: standard library only.
"""

import sys

from dataclasses import dataclass

from rotator.core import evidence as ev
from rotator.core.machine import ROLE_TABLE, ROTATION_TABLE, TOKEN_ORIGINS, Action
from rotator.core.model import Outcome, Step


@dataclass(frozen=True, slots=True)
class StepRule:
    """One step of a rotation."""

    step: Step
    records: str  # what the journal holds once the step is written
    then: str  # the upstream call the written step licenses
    next_step: Step | None  # where a successful call leads
    resume: str  # what the next run does if it finds the rotation stopped here (the note it keeps)

    @property
    def resume_outcome(self) -> Outcome | None:
        """How a crash found here closes the rotation, from the table (None: it carries on, or nothing)."""
        entry = ROTATION_TABLE.get((self.step, ev.CrashFound))
        return None if entry is None or entry.outcome is Outcome.IN_PROGRESS else entry.outcome

    @property
    def rolls_forward(self) -> bool:
        """Whether a fresh rotation must follow the resume in the same run, from the table."""
        entry = ROTATION_TABLE.get((self.step, ev.CrashFound))
        return entry is not None and entry.action is Action.ROLL_FORWARD


PROTOCOL: tuple[StepRule, ...] = (
    StepRule(
        Step.PLANNED,
        "the new token's exact name and requested expiry",
        "POST /projects/:id/access_tokens (never retried on 5xx or timeout)",
        Step.CREATED,
        "resumed at PLANNED: nothing was pushed",
    ),
    StepRule(
        Step.CREATED,
        "the token id and GitLab's expires_at",
        "GET /personal_access_tokens/self with the new token (it checks itself)",
        Step.PUSHING,
        "resumed at CREATED: revoked the unpushed token",
    ),
    StepRule(
        Step.PUSHING,
        "the connection's credentialsHash just before the push",
        "PATCH /api/v1/app-connections/gitlab/:connectionId with the full credentials",
        Step.PUSHED,
        "resumed at PUSHING: outcome unknown, rolling forward",
    ),
    StepRule(
        Step.PUSHED,
        "the hash the PATCH returned",
        "GET the connection again until it shows that hash (replica lag)",
        Step.VERIFIED,
        "resumed at PUSHED: re-read the connection and finish",
    ),
    StepRule(
        Step.VERIFIED,
        "the new token is current; the old one is a pending revoke",
        "DELETE the old token once its grace has passed (drift and in-use checks first)",
        None,
        "nothing to resume",
    ),
)
RULES = {rule.step: rule for rule in PROTOCOL}
_BEGIN, _END = "<!-- protocol:begin (python -m rotator.core.protocol) -->", "<!-- protocol:end -->"


def _node(step: Step, outcome: Outcome) -> str:
    """Where an edge ends in the diagram: the step while open (or verified), else the outcome."""
    return step.value if outcome in (Outcome.IN_PROGRESS, Outcome.SUCCEEDED) else outcome.value


def rotation_rows() -> list[str]:
    """One table row per rotation transition: from, evidence, to, outcome, what follows."""
    return [
        f"| {step.value} | `{kind.__name__}` | {e.to.value} | `{e.outcome.value}` | {e.action.value} |"
        for (step, kind), e in ROTATION_TABLE.items()
    ]


def role_rows() -> list[str]:
    """One table row per token transition: from, evidence, to, what follows."""
    return [
        f"| {role.value} | `{kind.__name__}` | {entry.to.value} | {entry.action.value} |"
        for (role, kind), entry in ROLE_TABLE.items()
    ]


def diagram() -> str:
    """The Markdown block for ``docs/rotation.md``: both diagrams, the step table, both transition tables."""
    lines = [_BEGIN, "```mermaid", "stateDiagram-v2", f"    [*] --> {PROTOCOL[0].step.value}"]
    lines += [
        f"    {step.value} --> {_node(entry.to, entry.outcome)}: {entry.says}"
        for (step, _), entry in ROTATION_TABLE.items()
    ]
    lines.append(f"    {PROTOCOL[-1].step.value} --> [*]")
    lines += [
        "```",
        "",
        "| step recorded | the journal holds | then | a crash here: the next run |",
        "|---|---|---|---|",
    ]
    for rule in PROTOCOL:
        outcome = f" (`{rule.resume_outcome.value}`)" if rule.resume_outcome else ""
        lines.append(f"| {rule.step.value} | {rule.records} | {rule.then} | {rule.resume}{outcome} |")
    lines += [
        "",
        "Every transition a rotation can take (`rotator/core/machine.py`, `ROTATION_TABLE`);",
        "any other pair raises `ProtocolViolation`:",
        "",
        "| step | evidence | to | outcome | then |",
        "|---|---|---|---|---|",
        *rotation_rows(),
        "",
        "A tracked token's role (`ROLE_TABLE`):",
        "",
        "```mermaid",
        "stateDiagram-v2",
    ]
    lines += [f"    [*] --> {role.value}: {how}" for role, how in TOKEN_ORIGINS]
    lines += [
        f"    {role.value} --> {entry.to.value}: {entry.says}" for (role, _), entry in ROLE_TABLE.items()
    ]
    lines += [
        "```",
        "",
        "| role | evidence | to | then |",
        "|---|---|---|---|",
        *role_rows(),
        _END,
    ]
    return "\n".join(lines) + "\n"


def replace_block(document: str) -> str:
    """``document`` with its generated block replaced by the current :func:`diagram`."""
    head, _, rest = document.partition(_BEGIN)
    _, _, tail = rest.partition(_END + "\n")
    return head + diagram() + tail


if __name__ == "__main__":  # pragma: no cover - the generator's command line
    print(diagram(), end="")  # noqa: T201 - a generator prints what it generates
    sys.exit(0)
