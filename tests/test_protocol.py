"""The protocol table: complete, consistent, and the document generated from it is current."""

import itertools

from pathlib import Path

from rotator.core.model import Outcome, Step
from rotator.core.protocol import PROTOCOL, RULES, diagram, replace_block


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
