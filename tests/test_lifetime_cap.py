"""Issue 14 item 6: a GitLab lifetime cap below rotate_before must not mint a token on every run."""

from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.cli_harness import Harness


pytestmark = pytest.mark.slow


def test_a_lifetime_cap_rotates_once_per_effective_due_time(fakes: Fakes, tmp_path: Path) -> None:
    """An 8-day cap, lifetime 30d, rotate_before 10d: the second run mints nothing, exits 0 and says why."""
    fakes.gitlab.set_max_lifetime(8)
    h = Harness(fakes, tmp_path)
    h.write_config(targets=1, grace="0s", rotate_before="10d")
    first = h.run("run-once")
    assert first.code == 0, first.stdout + first.stderr
    assert h.held_works(0)
    # Said once the rotation is done, from the records it left (its token's capped lifetime).
    assert "effective rotate_before is 2d" in first.stderr
    rotated = h.active_tokens(0)
    second = h.run("run-once")
    assert second.code == 0, second.stdout + second.stderr
    assert h.active_tokens(0) == rotated
    assert "nothing due" in second.stdout
    warning = next(line for line in second.stderr.splitlines() if "token.lifetime_capped" in line)
    assert "rotate_before 10d" in warning
    assert "effective rotate_before is 2d" in warning
    plan = h.run("plan")
    assert plan.code == 0
    assert "effective rotate_before is 2d" in plan.stdout
    assert "effective rotate_before is 2d" in h.run("check").stdout
