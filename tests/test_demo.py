"""``rotator demo``: the README's first command, run as a newcomer would run it."""

import os
import re
import subprocess
import sys

from pathlib import Path

import pytest


pytestmark = pytest.mark.slow


def test_the_demo_rotates_twice_proves_it_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """No config, no secret: every step is narrated, the proof holds, exit 0, the temp folder is empty."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "rotator", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for step in ("planned", "created", "pushing", "pushed", "verified", "retired", "revoked"):
        assert len(re.findall(rf"^  app-deploy\s+{step}\b", out, re.MULTILINE)) == 2, step
    assert out.count("Infisical holds a token GitLab accepts: yes") == 2
    assert out.count("(only the held one)") == 2
    assert len(re.findall(r"^  \S+\s+adopted  token \d+", out, re.MULTILINE)) == 2
    assert re.search(r"app-deploy\s+old tokens presented to GitLab: \d+->401, \d+->401$", out, re.MULTILINE)
    assert "TARGET" in out
    assert out.rstrip().endswith("demo passed: rotated twice, old tokens dead, Infisical holds a live one")
    assert done.stderr == ""
    assert not re.search(r"glpat-|eyJ", out)
    assert list(tmp_path.iterdir()) == []
