"""``rotator state copy --from URL --to URL`` as a user runs it: in process, on SQLite files.

What the copy preserves is the journal suite's business (``tests/journal/test_copy.py``, over every
pair of stores); here: the command's exit codes, its output and what it leaves on disk.
"""

import contextlib
import os
import stat

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rotator.journal.postgres import PostgresJournal
from rotator.journal.snapshot import Snapshot, accept
from rotator.journal.sqlite import SQLiteJournal
from tests.cli_harness import Result, run_in_process
from tests.journal.samples import KEY, TTL
from tests.journal.test_copy import _fill, _reads
from tests.postgres import fresh_database, fresh_schema, refusing_server


def _copy(source: str, destination: str) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    return run_in_process(["state", "copy", "--from", source, "--to", destination], env)


def _url(path: Path) -> str:
    return f"sqlite:///{path}"  # an absolute path: four slashes in all


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A journal holding every kind of record, no lease live, closed."""
    path = tmp_path / "old" / "state.db"
    journal = SQLiteJournal(path)
    _fill(journal)
    journal.close()
    return path


def _read(path: Path) -> tuple[object, ...]:
    journal = SQLiteJournal(path, read_only=True)
    try:
        return _reads(journal)
    finally:
        journal.close()


def test_copy_prints_rows_per_table_and_the_destination_reads_as_the_source(
    source: Path, tmp_path: Path
) -> None:
    """Exit 0; one line per table with its rows, then ok; the new file (0600) answers every read alike."""
    destination = tmp_path / "new" / "state.db"
    before = source.read_bytes()
    done = _copy(_url(source), _url(destination))
    assert done.code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split() for line in lines[:6]] == [
        ["targets", "2"],
        ["rotations", "9"],
        ["tokens", "7"],
        ["tombstones", "2"],
        ["projects", "2"],
        ["unresolved", "1"],
    ]
    fences = lines[6].split()  # the forgotten key's fence, in a store that keeps it
    assert fences[0] == "fences"
    assert lines[7].split() == ["requests", "2"]
    assert f"ok: {25 + int(fences[1])} rows copied from {source} to {destination};" in lines[8]
    assert len(lines) == 9
    assert done.stderr == ""
    assert _read(destination) == _read(source)
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    assert source.read_bytes() == before


def test_a_relative_url_is_relative_to_the_current_folder(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///PATH (three slashes) names a file under the folder the command runs in."""
    monkeypatch.chdir(tmp_path)
    done = _copy("sqlite:///old/state.db", "sqlite:///copy.db")
    assert done.code == 0, done.stderr
    assert _read(tmp_path / "copy.db") == _read(source)


def test_a_destination_holding_a_journal_is_a_usage_error(source: Path, tmp_path: Path) -> None:
    """Exit 2 naming --to and the tables that hold rows; the destination is left as it was."""
    destination = tmp_path / "busy.db"
    journal = SQLiteJournal(destination)
    journal.remember_project(KEY.gitlab_url, "acme/app", 42)
    journal.close()
    before = _read(destination)
    done = _copy(_url(source), _url(destination))
    assert done.code == 2
    assert done.stderr.startswith("rotator: error: --to: ")
    assert "already holds a journal (rows in projects)" in done.stderr
    assert _read(destination) == before
    assert done.stdout == ""


def test_a_live_lease_refuses_the_copy_and_creates_nothing(source: Path, tmp_path: Path) -> None:
    """A rotation in flight in the source: exit 1 saying so; no destination file is left behind."""
    journal = SQLiteJournal(source)
    journal.acquire(KEY, "app-deploy", "host:1", datetime.now(UTC), TTL)
    journal.close()
    destination = tmp_path / "new.db"
    done = _copy(_url(source), _url(destination))
    assert done.code == 1
    assert "rotator: state copy refused: a rotation is in flight" in done.stderr
    assert "fork the journal" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_source_written_during_the_copy_leaves_the_destination_empty(
    kind: str, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source changing mid-copy: exit 1 saying so; the destination keeps nothing (a new file is gone)."""
    restore = SQLiteJournal.restore if kind == "sqlite" else PostgresJournal.restore

    def meddling(self: Any, snapshot: Snapshot, check: Callable[[Snapshot], None] = accept) -> None:  # noqa: ANN401
        late = SQLiteJournal(source)  # a rotator still running on the source, writing during the copy
        late.remember_project(KEY.gitlab_url, "acme/late", 9)
        late.close()
        restore(self, snapshot, check)

    with contextlib.ExitStack() as stack:
        if kind == "sqlite":
            destination = _url(tmp_path / "new" / "state.db")
        else:
            destination = stack.enter_context(fresh_schema())
        with monkeypatch.context() as patched:
            patched.setattr(SQLiteJournal if kind == "sqlite" else PostgresJournal, "restore", meddling)
            done = _copy(_url(source), destination)
        assert done.code == 1, done.stdout
        assert "the source changed while it was being copied" in done.stderr
        assert "nothing was kept in the destination" in done.stderr
        assert not (tmp_path / "new" / "state.db").exists()
        again = _copy(_url(source), destination)  # nothing there to refuse as "already holds a journal"
        assert again.code == 0, again.stderr


def test_a_missing_source_is_a_usage_error_and_creates_nothing(tmp_path: Path) -> None:
    """--from naming no file: exit 2 naming --from and the path; neither file is created."""
    done = _copy(_url(tmp_path / "nope.db"), _url(tmp_path / "new.db"))
    assert done.code == 2
    assert done.stderr == f"rotator: error: --from: no journal at {tmp_path / 'nope.db'}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        (["http://db/state", "sqlite:///x.db"], "--from"),
        (["sqlite:///x.db", "mysql://db/state"], "--to"),
        (["sqlite:///", "sqlite:///x.db"], "--from"),
    ],
)
def test_a_url_that_is_no_store_is_a_usage_error(
    arguments: list[str], option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL of another scheme, or naming no file, is exit 2 naming the option; nothing is created."""
    monkeypatch.chdir(tmp_path)
    done = _copy(*arguments)
    assert done.code == 2
    assert done.stderr.startswith(f"rotator: error: {option}: ")
    assert list(tmp_path.iterdir()) == []


def test_copying_a_journal_onto_itself_is_a_usage_error(source: Path) -> None:
    """--to naming the --from file is exit 2, and the journal is untouched."""
    before = _read(source)
    done = _copy(_url(source), _url(source))
    assert done.code == 2
    assert "--to: is the journal --from names" in done.stderr
    assert _read(source) == before


def test_a_file_that_is_not_a_journal_is_refused_naming_the_option(source: Path, tmp_path: Path) -> None:
    """A text file as --to is exit 2 naming --to; the file keeps its bytes."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not a journal\n")
    done = _copy(_url(source), _url(notes))
    assert done.code == 2
    assert done.stderr.startswith("rotator: error: --to: ")
    assert notes.read_text() == "not a journal\n"


def test_state_copy_help_describes_urls_password_exit_codes_and_an_example() -> None:
    """`rotator state copy --help`: what is copied, the password variable, each exit code, an example."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    shown = run_in_process(["state", "copy", "--help"], env)
    assert shown.code == 0
    assert "--from URL" in shown.stdout
    assert "ROTATOR_STATE_PASSWORD[_FILE]" in shown.stdout
    assert "\n  0 copied and verified; 1 refused" in shown.stdout
    assert "rotator state copy --from sqlite:////" in shown.stdout


def test_sqlite_to_postgresql_and_back_reads_as_the_source(source: Path, tmp_path: Path) -> None:
    """SQLite → a fresh PostgreSQL database → a new SQLite file: exit 0 each way, every read alike."""
    back = tmp_path / "back" / "state.db"
    with fresh_database() as database:
        there = _copy(_url(source), database)
        assert there.code == 0, there.stderr
        assert "rows copied from" in there.stdout
        assert "postgres@" not in there.stdout  # the database is named by host, port and name only
        again = _copy(_url(source), database)
        assert again.code == 2, again.stdout
        assert "--to" in again.stderr
        home = _copy(database, _url(back))
        assert home.code == 0, home.stderr
    assert _read(back) == _read(source)


def test_a_postgresql_source_without_a_journal_is_named(tmp_path: Path) -> None:
    """An empty database as --from: exit 2 naming --from; nothing is created in it or on disk."""
    destination = tmp_path / "new" / "state.db"
    with fresh_database() as database:
        done = _copy(database, _url(destination))
    assert done.code == 2
    assert "--from" in done.stderr
    assert "no journal" in done.stderr
    assert not destination.exists()


def test_a_password_in_a_postgresql_url_is_refused_unechoed(source: Path) -> None:
    """A password written into --to is refused (exit 2, naming --to) and never printed."""
    done = _copy(_url(source), "postgresql://rotator:Sup3rSecretPw@127.0.0.1:5432/nowhere")
    assert done.code == 2
    assert "--to" in done.stderr
    assert "Sup3rSecretPw" not in done.stderr + done.stdout


def test_a_refused_password_names_its_variable(source: Path) -> None:
    """A database refusing the password given for --to: exit 2 naming ROTATOR_STATE_PASSWORD, unechoed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    with refusing_server("28P01", 'password authentication failed for user "rotator"') as (port, sent):
        destination = f"postgresql://rotator@127.0.0.1:{port}/rotator"
        arguments = ["state", "copy", "--from", _url(source), "--to", destination]
        done = run_in_process(arguments, {**env, "ROTATOR_STATE_PASSWORD": "pg-Wrong-Password-7"})
    assert done.code == 2, done.stderr
    assert done.stderr.startswith(
        "rotator: error: ROTATOR_STATE_PASSWORD: the journal's database at 127.0.0.1:"
    )
    assert "pg-Wrong-Password-7" not in done.stderr + done.stdout
    assert sent == ["pg-Wrong-Password-7"]
