"""A run stopped dead right after recording each step converges on later runs (architecture §1, §5).

Each case runs for every target kind (project, group, service account): the first target is of that
kind. The group and service-account variants of the heavier cases (two targets, a crash during
recovery) run in the exhaustive tier, as does every case for an instance service account (an
administrator manager, its tokens through the personal access token API).
"""

from datetime import timedelta
from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.faults.calls import kinds
from tests.faults.campaign import CRASHED, Case
from tests.kinds import INSTANCE, KINDS, NAMES


pytestmark = pytest.mark.slow
ROTATION_STEPS = ("PLANNED", "CREATED", "PUSHING", "PUSHED", "VERIFIED")
GRACE_POINTS = ("GRACE-CHECKED", "REVOKED")
#: The instance service account, in the exhaustive tier only.
INSTANCE_KIND = pytest.param(INSTANCE, marks=pytest.mark.exhaustive)


@pytest.mark.parametrize(
    ("kind", "targets"),
    [
        *[pytest.param(kind, 1, id=f"{kind}-1") for kind in KINDS],
        *[
            pytest.param(kind, 2, marks=pytest.mark.exhaustive if kind != "project" else (), id=f"{kind}-2")
            for kind in KINDS
        ],
        *[pytest.param(INSTANCE, n, marks=pytest.mark.exhaustive, id=f"{INSTANCE}-{n}") for n in (1, 2)],
    ],
)
@pytest.mark.parametrize("step", ROTATION_STEPS)
def test_crash_after_each_rotation_step_converges(
    fakes: Fakes, tmp_path: Path, step: str, kind: str, targets: int
) -> None:
    """Killed right after recording STEP, a run inside the lease waits; later runs finish or undo it."""
    case = Case(fakes, tmp_path, targets=targets, kind=kind)
    assert case.run("run-once", crash_after=step).code == CRASHED
    early = case.run("run-once")
    assert early.code == 0, early.stdout + early.stderr
    lines = early.stdout.splitlines()
    if targets == 1:
        assert ("idle" if step == "VERIFIED" else "busy") in lines[0]
    else:  # targets run side by side: either may be the one that crashed mid-way
        assert not [line for line in lines if "failed" in line], lines
    case.converge()


@pytest.mark.parametrize("kind", [*kinds(heavy=False), INSTANCE_KIND])
@pytest.mark.parametrize("point", GRACE_POINTS)
def test_crash_while_revoking_after_grace_converges(
    fakes: Fakes, tmp_path: Path, point: str, kind: str
) -> None:
    """Killed after the pre-revoke checks, or after the DELETE's evidence, the next runs end with 1 token."""
    case = Case(fakes, tmp_path, kind=kind)
    assert case.run("run-once").code == 0
    case.fakes.clock.advance(timedelta(minutes=61))
    assert case.run("run-once", crash_after=point).code == CRASHED
    case.converge()


@pytest.mark.parametrize("kind", [*kinds(heavy=True), INSTANCE_KIND])
@pytest.mark.parametrize("second", ROTATION_STEPS)
@pytest.mark.parametrize("first", ["PLANNED", "PUSHING"])
def test_a_crash_during_recovery_from_a_crash_converges(
    fakes: Fakes, tmp_path: Path, first: str, second: str, kind: str
) -> None:
    """Killed at FIRST, then again at SECOND in the run that recovers: still no lockout, no leak."""
    case = Case(fakes, tmp_path, kind=kind)
    assert case.run("run-once", crash_after=first).code == CRASHED
    case.fakes.clock.advance(timedelta(minutes=11))
    assert case.run("run-once", crash_after=second).code in {0, CRASHED}
    case.converge()


@pytest.mark.parametrize("kind", [*kinds(heavy=True), INSTANCE_KIND])
def test_take_over_after_a_crash_at_pushed_and_a_foreign_write_rolls_forward(
    fakes: Fakes, tmp_path: Path, kind: str
) -> None:
    """Crash at PUSHED, then a person overwrites the connection: `--take-over` rotates, no freeze."""
    case = Case(fakes, tmp_path, kind=kind)
    assert case.run("run-once", crash_after="PUSHED").code == CRASHED
    hand_made = case.foreign_write()
    case.fakes.clock.advance(timedelta(minutes=11))
    taken = case.run("rotate", NAMES[kind], "--take-over")
    assert taken.code == 0, taken.stdout + taken.stderr
    assert hand_made not in case.managed()
    outcomes = [r["outcome"] for r in case.journal()["history"]]
    assert outcomes == ["succeeded", "superseded"], outcomes
    case.converge()
