"""The journal file as the CLI meets it: missing, not a journal, a symlink, loose, and `history`'s bounds.

Each case runs the real ``rotator`` command (in process: :mod:`tests.cli_harness`) for its exit
code and its one stderr line, and compares the folder's listing before and after: a read-only
command creates nothing.
"""

import json
import os
import sqlite3
import stat

from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.cli_harness import SLEEP_SCALE, Harness, Result, run_in_process


pytestmark = pytest.mark.slow

_OFFLINE_CONFIG = (
    "gitlab: {url: https://gitlab.example.com}\n"
    "state: {url: 'sqlite:///sub/dir/state.db'}\n"
    "targets: [{name: app, project: 1, connection_id: 3c90c3cc-0d44-4b50-8888-8dd25736052a,"
    " token: {scopes: [api]}}]\n"
)


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """A config for both example targets against the fakes; the journal is ``state.db`` beside it."""
    return Harness(fakes, tmp_path)


def _listing(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``folder`` with its mode and, for a file, its bytes."""
    return {
        str(p.relative_to(folder)): (
            p.lstat().st_mode,
            None if p.is_dir() or p.is_symlink() else p.read_bytes(),
        )
        for p in sorted(folder.rglob("*"))
    }


def _offline(folder: Path, *args: str) -> Result:
    """``rotator ARGS`` on a config whose journal would be ``sub/dir/state.db``; no secret, no upstream."""
    config = folder / "rotator.yaml"
    config.write_text(_OFFLINE_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    return run_in_process(["--config", str(config), *args], env)


def _run(h: Harness, *args: str) -> Result:
    """``h.run`` without the clock-offset and sleep-scale hooks: each announcement is one more stderr line."""
    return h.run(*args, extra_env={"ROTATOR_TEST_CLOCK_OFFSET": "", SLEEP_SCALE: ""})


def _one_error_line(result: Result, *parts: str) -> None:
    """Exit 2, one stderr line holding every part, nothing on stdout, no traceback."""
    assert result.code == 2, result
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    for part in parts:
        assert part in line, line


@pytest.mark.parametrize(
    "args", [("status",), ("status", "--json"), ("history",), ("history", "--json", "--target", "app")]
)
def test_status_and_history_without_a_journal_say_so_and_create_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """No journal yet: exit 2 with "no journal at PATH", and neither the file nor its folders appear."""
    (tmp_path / "rotator.yaml").write_text(_OFFLINE_CONFIG)
    before = _listing(tmp_path)
    result = _offline(tmp_path, *args)
    _one_error_line(
        result, "state.url: no journal at", str(tmp_path / "sub" / "dir" / "state.db"), "`rotator run-once`"
    )
    assert _listing(tmp_path) == before


def test_forget_without_a_journal_creates_none_to_say_so(tmp_path: Path) -> None:
    """`forget KEY` with no journal is exit 2 "no journal", not a new journal and "no entry"."""
    (tmp_path / "rotator.yaml").write_text(_OFFLINE_CONFIG)
    before = _listing(tmp_path)
    _one_error_line(_offline(tmp_path, "forget", "x|1|y"), "state.url: no journal at")
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("command", ["plan", "check"])
def test_plan_and_check_without_a_journal_read_it_as_empty_and_create_nothing(
    h: Harness, command: str
) -> None:
    """`plan` and `check` still work before the first run, and leave no journal behind."""
    before = _listing(h.folder)
    result = h.run(command)
    assert result.code == 0, result
    assert _listing(h.folder) == before


def test_status_reads_an_existing_journal_without_changing_it(h: Harness) -> None:
    """After a run, `status`, `history` and `plan` read the journal and change no byte of it."""
    assert h.run("run-once").code == 0
    journal = h.folder / "state.db"
    before = journal.read_bytes()
    for args in (("status",), ("history",), ("plan",)):
        result = h.run(*args)
        assert result.code == 0, result
        assert "chmod" not in result.stderr
    assert journal.read_bytes() == before


def _another_apps_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('keep me')")
    db.close()


@pytest.mark.parametrize("content", ["text", "sqlite"])
@pytest.mark.parametrize("command", ["status", "history", "plan", "check", "run-once"])
def test_a_file_that_is_not_a_journal_is_one_state_url_line_and_untouched(
    h: Harness, content: str, command: str
) -> None:
    """A text file or another app's SQLite file: exit 2 naming state.url and the file, left as it was."""
    journal = h.folder / "state.db"
    if content == "text":
        journal.write_text("these are my notes\n")
    else:
        _another_apps_database(journal)
    before = _listing(h.folder)
    result = _run(h, command)
    _one_error_line(result, "state.url:", f"{journal} is not a rotator journal")
    assert _listing(h.folder) == before
    assert h.mutations() == 0


@pytest.mark.parametrize("command", ["status", "history", "plan", "check", "run-once"])
def test_a_symlinked_journal_is_refused_naming_the_link_and_its_target(h: Harness, command: str) -> None:
    """state.url naming a symlink (even to a real journal) is exit 2 naming both; nothing is followed."""
    assert h.run("run-once").code == 0
    real = h.folder / "real.db"
    (h.folder / "state.db").rename(real)
    (h.folder / "state.db").symlink_to(real)
    before = _listing(h.folder)
    result = _run(h, command)
    _one_error_line(result, "state.url:", f"{h.folder / 'state.db'} is a symlink to {real}")
    assert _listing(h.folder) == before


def test_a_dangling_symlink_is_refused_not_created_through(h: Harness) -> None:
    """A link to a file that does not exist yet: run-once refuses it rather than create its target."""
    target = h.folder / "elsewhere.db"
    (h.folder / "state.db").symlink_to(target)
    _one_error_line(_run(h, "run-once"), "state.url:", "is a symlink to")
    assert not target.exists()
    assert h.mutations() == 0


def test_a_journal_open_to_others_is_used_with_a_warning_naming_the_chmod(h: Harness) -> None:
    """A group/world-readable journal still works (exit 0); status and history warn in one plain line."""
    assert h.run("run-once").code == 0
    journal = h.folder / "state.db"
    journal.chmod(0o644)
    for args in (("status",), ("status", "--json"), ("history",)):
        result = h.run(*args)
        assert result.code == 0, result
        [warning] = [line for line in result.stderr.splitlines() if "chmod" in line]
        assert warning.startswith("rotator: warning: state.url:")
        assert f"chmod 600 {journal}" in warning
    assert "as_of" in h.run("status", "--json").json()  # the warning stays off stdout


@pytest.mark.parametrize("command", ["run-once", "plan", "check"])
def test_where_stderr_is_the_json_log_the_loose_journal_warning_is_an_event(h: Harness, command: str) -> None:
    """run-once, plan and check log JSON on stderr: the warning is a journal.loose_permissions event there."""
    assert h.run("run-once").code == 0
    journal = h.folder / "state.db"
    journal.chmod(0o640)
    result = _run(h, command)
    assert result.code == 0, result
    lines = result.stderr.splitlines()
    assert all(line.startswith("{") for line in lines), lines  # every stderr line is a JSON event
    # One event per loose file: SQLite gives the WAL and shared-memory files the journal's mode.
    events = {e["path"]: e for e in map(json.loads, lines) if e["event"] == "journal.loose_permissions"}
    event = events[str(journal)]
    assert (event["level"], event["mode"], event["fix"]) == ("warning", "0640", f"chmod 600 {journal}")
    assert set(events) <= {str(journal), f"{journal}-wal", f"{journal}-shm"}


def test_a_new_journal_is_private_in_a_private_folder(h: Harness) -> None:
    """run-once creates the journal 0600 and each missing folder 0700."""
    config = h.folder / "rotator.yaml"
    config.write_text(config.read_text().replace("sqlite:///state.db", "sqlite:///a/b/state.db"))
    assert h.run("run-once").code == 0
    assert stat.S_IMODE((h.folder / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((h.folder / "a" / "b").stat().st_mode) == 0o700
    assert stat.S_IMODE((h.folder / "a" / "b" / "state.db").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "limit", ["-1", "-5", "0", "10001", "9" * 30, "x", "1.5", "", "+5", " 5", "5 ", "1_0", "\u0665", "\uff15"]
)
def test_history_limit_outside_1_to_10000_is_a_usage_error(tmp_path: Path, limit: str) -> None:
    """`history --limit` refuses zero, negatives, too-large, signs, spaces, _ and non-ASCII digits: exit 2."""
    result = _offline(tmp_path, "history", "--limit", limit)
    assert result.code == 2, result
    assert "Traceback" not in result.stderr
    assert "argument --limit: must be a whole number from 1 to 10000" in result.stderr
    assert not (tmp_path / "sub").exists()


def test_history_limit_takes_leading_zeros_and_the_bounds(h: Harness) -> None:
    """`--limit 1`, `--limit 10000` and `--limit 0002` are plain ASCII numbers in range: accepted."""
    assert h.run("run-once").code == 0
    for limit, rows in (("1", 1), ("10000", 2), ("0002", 2)):
        result = h.run("history", "--json", "--limit", limit)
        assert result.code == 0, result
        assert len(result.json()) == rows


def test_history_help_states_the_limit_bounds(tmp_path: Path) -> None:
    """`history --help` says what --limit accepts."""
    result = _offline(tmp_path, "history", "--help")
    assert result.code == 0
    assert "1 to 10000" in " ".join(result.stdout.split())


def test_history_of_an_unknown_target_lists_the_known_names(h: Harness) -> None:
    """`history --target nope` is exit 2 listing configured and removed names; a removed name still reads."""
    assert h.run("run-once").code == 0
    h.write_config(targets=1)  # api-deploy removed from the config; its rotations stay in the journal
    _one_error_line(
        _run(h, "history", "--target", "nope"),
        "--target: no target named 'nope'; known: app-deploy, api-deploy",
    )
    removed = h.run("history", "--json", "--target", "api-deploy", "--limit", "10000")
    assert removed.code == 0, removed
    assert [row["target"] for row in removed.json()] == ["api-deploy"]


def _damage(journal: Path) -> None:
    """Overwrite the journal's fourth page with 0xff, as a bad disk sector would."""
    assert journal.stat().st_size > 4 * 4096, "too small a journal to damage a middle page"
    with journal.open("r+b") as file:
        file.seek(3 * 4096)
        file.write(b"\xff" * 4096)


def _damaged_line(journal: Path) -> str:
    return (
        f"state.url: the journal at {journal} is damaged (SQLite: database disk image is malformed);"
        " restore it from a backup"
    )


@pytest.mark.parametrize("command", ["status", "history", "plan", "run-once"])
def test_a_damaged_journal_is_one_state_url_line_saying_restore_it(h: Harness, command: str) -> None:
    """A journal with a page overwritten: exit 2, "damaged ... restore it from a backup", nothing sent."""
    assert h.run("run-once").code == 0
    journal = h.folder / "state.db"
    _damage(journal)
    damaged = journal.read_bytes()
    before = h.mutations()
    _one_error_line(_run(h, command), _damaged_line(journal))
    assert journal.read_bytes() == damaged
    assert h.mutations() == before


@pytest.mark.parametrize("size", [100, 4096, 8192])
@pytest.mark.parametrize("command", ["status", "run-once"])
def test_a_truncated_journal_is_damaged_not_another_file(h: Harness, size: int, command: str) -> None:
    """A journal cut short keeps SQLite's header: it is "damaged, restore it", not "not a rotator journal"."""
    assert h.run("run-once").code == 0
    journal = h.folder / "state.db"
    journal.write_bytes(journal.read_bytes()[:size])
    result = _run(h, command)
    _one_error_line(
        result, f"state.url: the journal at {journal} is damaged (SQLite: ", "restore it from a backup"
    )
    assert "not a rotator journal" not in result.stderr
