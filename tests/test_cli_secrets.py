"""Secret variables with a stray line break or control character, and a closed stdout, at the CLI."""

import os
import subprocess

from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.cli_harness import Harness, Result, run_in_process, run_process


#: Not glpat-shaped: a GitLab admin may set a custom prefix, so shape-based redaction misses it.
CUSTOM = "acme-Zk3xQ9vT2mLp8Rw4Yb6N"


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """A harness on the fakes, config in tmp_path."""
    return Harness(fakes, tmp_path)


def _run_with_token_file(h: Harness, path: str, *args: str, process: bool = False) -> Result:
    env = h.environment({"ROTATOR_GITLAB_TOKEN_FILE": path})
    del env["ROTATOR_GITLAB_TOKEN"]
    return run_process(h.command(*args), env) if process else run_in_process(h.arguments(*args), env)


@pytest.mark.parametrize("command", ["check", "run-once"])
def test_a_token_file_with_two_newlines_is_refused_and_never_shown(
    h: Harness, tmp_path: Path, command: str
) -> None:
    """A *_FILE ending in two newlines exits 2 with one line naming it; the token is shown nowhere."""
    path = tmp_path / "token"
    path.write_text(f"{CUSTOM}\n\n")
    result = _run_with_token_file(h, str(path), command)
    assert result.code == 2
    problem = "a secret is one line with no spaces or control characters (it holds U+000A)"
    assert result.stderr.splitlines() == [f"rotator: error: ROTATOR_GITLAB_TOKEN_FILE: {problem}"]
    assert CUSTOM not in result.stdout + result.stderr
    assert "Zk3xQ9vT" not in result.stdout + result.stderr
    assert h.calls() == 0


def test_proc_self_environ_as_a_token_file_is_refused(h: Harness) -> None:
    """/proc/self/environ (a 'regular file' of size 0) exits 2 and sends nothing anywhere."""
    # A process: its /proc/self/environ holds the secrets it was given (this process's does not).
    result = _run_with_token_file(h, "/proc/self/environ", "check", process=True)
    assert result.code == 2
    assert "ROTATOR_GITLAB_TOKEN_FILE: a secret is one line" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    client_secret = h.fakes.seed.infisical_client_secret
    assert client_secret not in result.stdout + result.stderr
    assert h.calls() == 0


def test_a_closed_stdout_exits_quietly(h: Harness) -> None:
    """`rotator history | head -1`: a reader that left is exit 1 with no traceback, not a crash."""
    assert h.run("run-once").code == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: every write fails with EPIPE
    try:
        done = subprocess.run(
            h.command("history"),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
            env=h.environment(),
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, "")
