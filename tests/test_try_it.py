"""README's "Try it against the fakes", run as written against a real ``rotator fakes`` process.

The ``sh`` blocks of that section are read from README.md and each line is run: ``export`` sets the
environment, ``rm -f`` deletes, ``[VAR=value ...] rotator ...`` runs the command (in process). The
only liberty: the fakes listen on a free pair of ports instead of 8929/8930 (other tests may hold
those), so the config is a copy of ``config/example.yaml`` pointing there, in a temporary folder.
"""

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.cli_harness import Result, run_in_process


pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
SECTION = "## Try it against the fakes"


def _readme_blocks() -> list[list[str]]:
    """The section's ```sh blocks, each as its command lines (comments kept)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(SECTION) :].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    return [block.strip().splitlines() for block in blocks]


def _free_pair() -> int:
    """A port P with P+1 free too (``rotator fakes --port P`` takes both)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with contextlib.suppress(OSError), socket.socket() as second:
                second.bind(("127.0.0.1", port + 1))
                return port
    pytest.fail("no free pair of loopback ports")


@dataclass
class World:
    """One run of ``rotator fakes``: what it printed and the variables its ``export`` lines set."""

    printed: str
    exports: dict[str, str]
    gitlab_url: str


@contextlib.contextmanager
def fakes_process(port: int) -> Iterator[World]:
    """``rotator fakes --port PORT`` until the block ends (SIGTERM; it must exit 0)."""
    with subprocess.Popen(
        [sys.executable, "-m", "rotator", "fakes", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            assert process.stdout is not None
            lines: list[str] = []
            while not (lines and lines[-1].startswith("# Ctrl-C")):
                line = process.stdout.readline()
                assert line, "rotator fakes ended early: " + "".join(lines)
                lines.append(line)
            printed = "".join(lines)
            exports = dict(re.findall(r"^export (\w+)=(\S+)$", printed, re.MULTILINE))
            gitlab_url = re.search(r"^fake GitLab:\s+(\S+)", printed, re.MULTILINE)
            assert gitlab_url is not None
            yield World(printed, exports, gitlab_url.group(1))
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            process.kill()


@dataclass
class Shell:
    """The second shell of the README: a folder holding ``config/example.yaml``, and its variables."""

    folder: Path
    port: int
    env: dict[str, str] = field(
        default_factory=lambda: {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    )

    def __post_init__(self) -> None:
        """Copy the example config, pointed at the fakes' ports."""
        example = (ROOT / "config" / "example.yaml").read_text()
        moved = example.replace("127.0.0.1:8929", f"127.0.0.1:{self.port}")
        moved = moved.replace("127.0.0.1:8930", f"127.0.0.1:{self.port + 1}")
        assert moved != example
        (self.folder / "config").mkdir()
        (self.folder / "config" / "example.yaml").write_text(moved)

    def paste(self, world: World) -> None:
        """Paste the ``export`` lines ``rotator fakes`` printed."""
        self.env.update(world.exports)

    def run(self, line: str) -> Result | None:
        """One line of a README block; a ``rotator`` command's result, else ``None``."""
        words = shlex.split(line, comments=True)
        if words[0] == "export":
            name, value = words[1].split("=", 1)
            self.env[name] = str(self.folder / value) if name == "ROTATOR_CONFIG" else value
            return None
        if words[:2] == ["rm", "-f"]:
            for pattern in words[2:]:
                for path in self.folder.glob(pattern):
                    path.unlink()
            return None
        assignments = dict(word.split("=", 1) for word in words if "=" in word and not word.startswith("-"))
        command = [word for word in words if word not in {f"{k}={v}" for k, v in assignments.items()}]
        assert command[0] == "rotator", line
        return run_in_process(command[1:], {**self.env, **assignments})


def _token_active(world: World, env: dict[str, str], project: str, token_id: int) -> bool:
    """Whether GitLab (the fakes' real API, with the manager token) says the token is active."""
    answer = httpx.get(
        f"{world.gitlab_url}/api/v4/projects/{project.replace('/', '%2F')}/access_tokens/{token_id}",
        headers={"PRIVATE-TOKEN": env["ROTATOR_GITLAB_TOKEN"]},
    )
    answer.raise_for_status()
    return bool(answer.json()["active"])


def _active_tokens(world: World, env: dict[str, str], project: str) -> list[int]:
    answer = httpx.get(
        f"{world.gitlab_url}/api/v4/projects/{project.replace('/', '%2F')}/access_tokens",
        headers={"PRIVATE-TOKEN": env["ROTATOR_GITLAB_TOKEN"]},
    )
    answer.raise_for_status()
    return [token["id"] for token in answer.json() if token["active"]]


def test_the_try_it_steps_rotate_and_the_clock_offset_shows_the_revoke(tmp_path: Path) -> None:
    """README's first two blocks as written: exit 0, old tokens live through the grace, the offset revokes."""
    first, revoke = _readme_blocks()[:2]
    port = _free_pair()
    shell = Shell(tmp_path, port)
    with fakes_process(port) as world:
        assert "rm -f config/rotator-state.db*" in world.printed
        assert "ROTATOR_TEST_CLOCK_OFFSET=61m" in world.printed
        # Not the default ports: the fakes say the example config as written would miss them.
        assert "# config/example.yaml expects 127.0.0.1:8929 and :8930: use a copy" in world.printed
        shell.paste(world)
        for line in first:
            result = shell.run(line)
            assert result is None or result.code == 0, (line, result)
        assert _token_active(world, shell.env, "acme/app", 1), "revoked before its grace"
        assert _token_active(world, shell.env, "acme/api", 2), "revoked before its grace"
        printed = []
        for line in revoke:
            result = shell.run(line)
            assert result is not None
            assert result.code == 0, (line, result)
            printed.append(result.stdout)
            quoted = line.split("#", 1)[1].strip()
            if quoted.startswith("app-deploy:"):  # the README quotes the command's own line
                assert quoted in result.stdout, (line, result.stdout)
        assert not _token_active(world, shell.env, "acme/app", 1)
        assert not _token_active(world, shell.env, "acme/api", 2)
        assert re.search(r"\b1\(revoked\)", printed[-1]), printed[-1]  # history


def test_after_a_restart_the_readme_way_starts_the_new_world_clean(tmp_path: Path) -> None:
    """Restarted fakes: the old journal means drift; after README's `rm -f` and exports, run-once rotates."""
    first, _, restart = _readme_blocks()[:3]
    port = _free_pair()
    shell = Shell(tmp_path, port)
    with fakes_process(port) as world:
        shell.paste(world)
        for line in first:
            if "history" not in line:
                shell.run(line)
    assert (tmp_path / "config" / "rotator-state.db").exists()
    with fakes_process(port) as world:
        shell.paste(world)
        stale = shell.run("rotator rotate app-deploy")
        assert stale is not None
        assert stale.code == 1
        assert "drift" in stale.stdout
        for line in restart:
            shell.run(line)
        assert not list((tmp_path / "config").glob("rotator-state.db*"))
        assert _active_tokens(world, shell.env, "acme/app") == [1]
        fresh = shell.run("rotator run-once")
        assert fresh is not None
        assert fresh.code == 0, fresh
        assert len(_active_tokens(world, shell.env, "acme/app")) == 2  # the adopted one, in its grace
