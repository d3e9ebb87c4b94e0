"""TMPDIR: scratch files go to a writable folder outside the state folder, or rotator refuses to start."""

from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.cli_harness import Harness, run_in_process


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """Both example targets against the fakes; the journal is ``state.db`` in ``tmp_path``."""
    return Harness(fakes, tmp_path)


def _unwritable(tmp_path: Path) -> Path:
    """A TMPDIR no file can be created in, even by root: a regular file, not a folder."""
    path = tmp_path.parent / f"{tmp_path.name}-not-a-folder"
    path.write_text("")
    return path


@pytest.mark.parametrize("command", ["run-once", "daemon", "status", "check"])
def test_an_unwritable_tmpdir_stops_a_journal_command_before_anything_happens(
    h: Harness, tmp_path: Path, command: str
) -> None:
    """Exit 2 naming TMPDIR, the folder and the fix; no journal created, nothing sent upstream."""
    bad = _unwritable(tmp_path)
    result = h.run(command, extra_env={"TMPDIR": str(bad)})
    assert result.code == 2, result.stderr
    assert f"rotator: error: TMPDIR: {bad}: cannot write a scratch file" in result.stderr
    assert "--tmpfs /tmp" in result.stderr
    assert not (tmp_path / "state.db").exists()
    assert h.calls() == 0


def test_a_tmpdir_inside_the_state_folder_is_refused(h: Harness, tmp_path: Path) -> None:
    """TMPDIR under the journal's folder: exit 2 saying scratch files would sit beside the journal."""
    inside = tmp_path / "scratch"
    inside.mkdir()
    result = h.run("run-once", extra_env={"TMPDIR": str(inside)})
    assert result.code == 2, result.stderr
    assert f"TMPDIR: {inside} is inside the state folder {tmp_path}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rotator.yaml", "scratch"]
    assert h.calls() == 0


def test_a_writable_tmpdir_elsewhere_lets_the_run_go_ahead(h: Harness, tmp_path: Path) -> None:
    """TMPDIR in another writable folder: run-once rotates both targets, exit 0."""
    elsewhere = tmp_path.parent / f"{tmp_path.name}-scratch"
    elsewhere.mkdir()
    result = h.run("run-once", extra_env={"TMPDIR": str(elsewhere)})
    assert result.code == 0, result.stderr
    assert (tmp_path / "state.db").exists()


def test_validate_writes_nothing_and_ignores_tmpdir(h: Harness, tmp_path: Path) -> None:
    """Validate (offline, for CI) needs no scratch folder: exit 0 with an unwritable TMPDIR."""
    result = h.run("validate", extra_env={"TMPDIR": str(_unwritable(tmp_path))})
    assert result.code == 0, result.stderr


def test_the_demo_refuses_an_unwritable_tmpdir(tmp_path: Path) -> None:
    """The demo keeps its whole world in a scratch folder: exit 2 naming TMPDIR, no fakes started."""
    bad = _unwritable(tmp_path)
    result = run_in_process(["demo"], {"TMPDIR": str(bad)})
    assert result.code == 2
    assert f"rotator: error: TMPDIR: {bad}: cannot write a scratch file" in result.stderr
    assert result.stdout == ""
