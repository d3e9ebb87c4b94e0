"""The SQLite journal's own behaviour: its file, codec, read-only mode, damage and old journals.

What every store must do is the contract suite's, in ``tests/journal/test_contract.py``.
"""

import contextlib
import json
import sqlite3
import stat
import tempfile

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.core.errors import ConfigError, JournalDamagedError
from rotator.core.model import (
    Change,
    Origin,
    Outcome,
    Role,
    RotationRecord,
    Step,
    TargetState,
    TokenRecord,
    UnresolvedProject,
)
from rotator.core.redact import redact
from rotator.doors import report
from rotator.doors.config import parse_config
from rotator.journal.codec import from_json, to_json
from rotator.journal.file import loose_permissions
from rotator.journal.sqlite import SQLiteJournal, damaged, sqlite_path
from tests.journal.samples import KEY, NOW, OTHER_KEY, TTL, UNRESOLVED, rotation


def test_a_journal_written_before_resolve_failures_were_kept_still_reads(tmp_path: Path) -> None:
    """No ``unresolved`` table: read-only it reads as no failure; opened to write, the table is added."""
    path = tmp_path / "state.db"
    first = SQLiteJournal(path)
    lease = first.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    first.write(lease, Change(rotation=rotation()))
    first.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        # The schema of the versions before: none of the later tables.
        for table in ("unresolved", "fences", "call_windows", "job_claims", "requests", "schema_version"):
            db.execute(f"DROP TABLE {table}")
    old = SQLiteJournal(path, read_only=True)
    assert old.unresolved(KEY.gitlab_url, "acme/gone") is None
    assert [t.name for t in old.targets()] == ["app-deploy"]
    old.close()
    upgraded = SQLiteJournal(path)
    assert upgraded.unfinished(KEY) == rotation()
    upgraded.record_unresolved(UNRESOLVED)
    assert upgraded.unresolved(KEY.gitlab_url, "acme/gone") == UNRESOLVED
    upgraded.close()


def test_records_survive_reopening(tmp_path: Path) -> None:
    """What one process wrote, the next one reads."""
    path = tmp_path / "state.db"
    first = SQLiteJournal(path)
    lease = first.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    first.write(lease, Change(rotation=rotation()))
    first.close()
    second = SQLiteJournal(path)
    assert second.unfinished(KEY) == rotation()
    assert [t.name for t in second.targets()] == ["app-deploy"]
    second.close()


def test_sqlite_file_is_private_and_durable(tmp_path: Path) -> None:
    """The file is mode 0600 in folders made 0700, and runs in WAL mode; writes are synchronous=FULL."""
    path = tmp_path / "sub" / "dir" / "state.db"
    store = SQLiteJournal(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # noqa: SLF001 - 2 is FULL
    store.close()


def test_sqlite_paths_follow_the_config_folder(tmp_path: Path) -> None:
    """Three slashes are relative to the config's folder, four are absolute, none is an error."""
    assert sqlite_path("sqlite:///state.db", tmp_path) == tmp_path / "state.db"
    assert sqlite_path("sqlite:////var/lib/rotator/state.db", tmp_path) == Path("/var/lib/rotator/state.db")
    with pytest.raises(ConfigError, match=r"state\.url"):
        sqlite_path("sqlite:///", tmp_path)


_times = (
    st.datetimes(
        min_value=datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        timezones=st.just(UTC),
    )
    | st.none()
)


@given(
    step=st.sampled_from(Step),
    outcome=st.sampled_from(Outcome),
    new_id=st.integers(min_value=1) | st.none(),
    verified=_times,
    error=st.text() | st.none(),
)
def test_codec_round_trips_rotations(
    step: Step, outcome: Outcome, new_id: int | None, verified: datetime | None, error: str | None
) -> None:
    """Every rotation record survives to_json/from_json, its free-text error as the one redaction shows it."""
    record = replace(
        rotation(), step=step, outcome=outcome, new_token_id=new_id, verified_at=verified, error=error
    )
    shown = replace(record, error=None if error is None else redact(error))
    assert from_json(RotationRecord, to_json(record)) == shown


def test_codec_writes_each_kind_of_field_as_the_stores_expect() -> None:
    """Key as its three fields, enums as values, ISO times, lists, free text redacted, names as given."""
    token = "glpat-" + "x" * 20
    state = replace(
        TargetState(key=KEY, name=f"named {token}"),
        verified_at=NOW,
        failures=3,
        last_error=f"GitLab said {token}\n",
        untracked=((7, "old", None), (8, "older", "2026-12-01")),
    )
    assert to_json(state) == {
        "key": {"gitlab_url": KEY.gitlab_url, "project_id": 42, "connection_id": KEY.connection_id},
        "name": f"named {token}",  # a name is looked up by: never touched
        "verified_hash": None,
        "verified_at": "2026-11-25T12:00:00+00:00",
        "verified_start": None,
        "observed_hash": None,
        "observed_at": None,
        "drift_since": None,
        "failures": 3,
        "backoff_until": None,
        "last_error": "GitLab said [REDACTED]\\n",
        "hold_since": None,
        "last_run_at": None,
        "untracked": [(7, "old", None), (8, "older", "2026-12-01")],
        "untracked_as_of": None,
    }
    planned = to_json(rotation())
    assert (planned["step"], planned["outcome"], planned["requested_expiry"]) == (
        "PLANNED",
        "in_progress",
        "2026-12-25",
    )
    assert type(planned["step"]) is str  # the enum's value, not the enum


@given(role=st.sampled_from(Role), origin=st.sampled_from(Origin), revoke_after=_times)
def test_codec_round_trips_tokens(role: Role, origin: Origin, revoke_after: datetime | None) -> None:
    """Every token record survives to_json/from_json unchanged."""
    record = TokenRecord(KEY, 3, "n", origin, role, None, revoke_after=revoke_after)
    assert from_json(TokenRecord, to_json(record)) == record


@given(
    since=_times.filter(lambda t: t is not None),
    failures=st.integers(min_value=1, max_value=2**31),
    status=st.integers(min_value=100, max_value=599) | st.none(),
    project=st.text(min_size=1),
)
def test_codec_round_trips_unresolved_projects(
    since: datetime, failures: int, status: int | None, project: str
) -> None:
    """Every resolve-failure record survives to_json/from_json unchanged."""
    record = replace(UNRESOLVED, project=project, since=since, at=since, failures=failures, status=status)
    assert from_json(UnresolvedProject, to_json(record)) == record


def test_codec_round_trips_the_untracked_list() -> None:
    """A target's untracked-token list (nested tuples) survives to_json/from_json unchanged."""
    state = TargetState(KEY, "app-deploy", untracked=((12, "by-hand", "2026-12-31"), (13, "x", None)))
    assert from_json(TargetState, to_json(state)) == state


def _written(path: Path) -> None:
    """A journal at ``path`` holding one rotation and one target."""
    store = SQLiteJournal(path)
    lease = store.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    store.write(lease, Change(rotation=rotation()))
    store.close()


def _files(folder: Path) -> dict[str, object]:
    """Each path under ``folder``: a link's target, a file's bytes, or None for a folder."""
    return {
        str(p.relative_to(folder)): p.readlink() if p.is_symlink() else None if p.is_dir() else p.read_bytes()
        for p in folder.rglob("*")
    }


def test_read_only_reads_a_journal_and_refuses_every_write(tmp_path: Path) -> None:
    """Opened read-only, the journal answers reads and any write fails, leaving the file as it was."""
    path = tmp_path / "state.db"
    _written(path)
    before = path.read_bytes()
    store = SQLiteJournal(path, read_only=True)
    assert store.unfinished(KEY) == rotation()
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.acquire(KEY, "app-deploy", "w2", NOW + TTL * 2, TTL)
    store.close()
    assert path.read_bytes() == before


def test_read_only_creates_no_file_or_folder(tmp_path: Path) -> None:
    """Read-only on a path with nothing there is a state.url error, and nothing appears."""
    with pytest.raises(ConfigError, match=r"state\.url: cannot read the journal"):
        SQLiteJournal(tmp_path / "sub" / "state.db", read_only=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", [":memory:", "empty.db"])
def test_read_only_reads_nothing_yet_as_an_empty_journal(tmp_path: Path, path: str) -> None:
    """An empty database (or none, in memory) read-only is an empty journal, not an error."""
    if path != ":memory:":
        (tmp_path / path).touch()
    store = SQLiteJournal(Path(path) if path == ":memory:" else tmp_path / path, read_only=True)
    assert (store.targets(), store.rotations(), store.recorded_names()) == ([], [], [])
    store.close()
    if path != ":memory:":
        assert (tmp_path / path).read_bytes() == b""


def _other_app(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE targets (id INTEGER PRIMARY KEY, label TEXT)")  # a name in common only
    db.close()


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.write_text("my notes\n"), "is not a rotator journal (not an SQLite database)"),
        (lambda p: p.write_bytes(b"x"), "is not a rotator journal (not an SQLite database)"),
        (_other_app, "is not a rotator journal (an SQLite database of something else, tables: targets)"),
        (lambda p: p.mkdir(), "is not a rotator journal (not a regular file)"),
        (lambda p: p.symlink_to(p.with_name("real.db")), "is a symlink to"),
    ],
)
def test_a_file_that_is_not_a_journal_is_refused_and_left_alone(
    tmp_path: Path, make: Callable[[Path], None], says: str, *, read_only: bool
) -> None:
    """Text, another app's database, a folder or a symlink: a state.url error naming the path; no change."""
    path = tmp_path / "state.db"
    make(path)
    before = _files(tmp_path)
    with pytest.raises(ConfigError, match=r"state\.url") as refused:
        SQLiteJournal(path, read_only=read_only)
    assert f"{path} {says}" in str(refused.value)
    assert _files(tmp_path) == before


@pytest.mark.parametrize("read_only", [False, True])
def test_a_file_with_sqlites_header_it_cannot_read_is_damaged_not_foreign(
    tmp_path: Path, *, read_only: bool
) -> None:
    """SQLite's header then garbage: "damaged, restore it from a backup", not "not a rotator journal"."""
    path = tmp_path / "state.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 84)
    before = _files(tmp_path)
    with pytest.raises(JournalDamagedError) as refused:
        SQLiteJournal(path, read_only=read_only)
    assert str(refused.value) == (
        f"state.url: the journal at {path} is damaged (SQLite: file is not a database);"
        " restore it from a backup"
    )
    assert _files(tmp_path) == before


@pytest.mark.parametrize("read_only", [False, True])
def test_damage_met_by_a_later_read_is_a_journal_damaged_error(tmp_path: Path, *, read_only: bool) -> None:
    """A page damaged after the open (a bad sector): the read that meets it, and every later one, fail so."""
    path = tmp_path / "state.db"
    store = SQLiteJournal(path)
    lease = store.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    for n in range(200):  # enough rows that the rotations table spans several pages
        store.write(lease, Change(rotation=rotation(f"r{n:03}", at=NOW + timedelta(seconds=n))))
    store.close()
    reader = SQLiteJournal(path, read_only=read_only)
    with path.open("r+b") as file:
        file.seek(3 * 4096)
        file.write(b"\xff" * 4096)
    with pytest.raises(JournalDamagedError, match=r"is damaged .*restore it from a backup"):
        reader.rotations(limit=1000)
    # The targets table sits on an intact page; once damage is seen, nothing more is read.
    with pytest.raises(JournalDamagedError, match="is damaged"):
        reader.targets()
    reader.close()


def test_a_locked_journal_is_not_called_damaged(tmp_path: Path) -> None:
    """SQLite's "database is locked" is an OperationalError: the file is fine, so it is not "damaged"."""
    path = tmp_path / "state.db"
    _written(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    probe = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:
        probe.execute("BEGIN IMMEDIATE")
    assert damaged(path, locked.value) is None
    holder.execute("ROLLBACK")
    holder.close()
    probe.close()


def test_a_symlink_is_refused_even_to_a_real_journal(tmp_path: Path) -> None:
    """A link to a genuine journal is refused too, naming the link and where it points."""
    real = tmp_path / "real.db"
    _written(real)
    link = tmp_path / "state.db"
    link.symlink_to(real)
    for read_only in (False, True):
        with pytest.raises(ConfigError, match=f"{link} is a symlink to {real}"):
            SQLiteJournal(link, read_only=read_only)


@settings(max_examples=50, deadline=None)
@given(content=st.binary(min_size=1, max_size=4096), header=st.booleans())
def test_whatever_a_non_empty_file_holds_it_is_refused_and_kept(content: bytes, *, header: bool) -> None:
    """Any bytes but a journal's (with SQLite's header or not): a state.url error, the bytes unchanged."""
    content = b"SQLite format 3\x00" + content if header else content
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "state.db"
        path.write_bytes(content)
        with pytest.raises(ConfigError, match=r"^state\.url: "):
            SQLiteJournal(path).close()
        assert path.read_bytes() == content


def test_loose_permissions_name_the_chmod_to_run(tmp_path: Path) -> None:
    """0600 says nothing; a group- or world-readable journal gets the chmod that fixes it."""
    path = tmp_path / "state.db"
    _written(path)
    assert loose_permissions(path) is None
    path.chmod(0o640)
    warning = loose_permissions(path)
    assert warning is not None
    assert warning.key == "state.url"
    assert "state.db 0640" in warning.problem
    assert warning.problem.endswith(f"run: chmod 600 {path}")


def _bulk(path: Path, records: list[RotationRecord]) -> None:
    """Insert ``records`` as the journal stores them, in one transaction (10,000 fenced writes are slow)."""
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO rotations (id, key, planned_at, outcome, data) VALUES (?, ?, ?, ?, ?)",
            [
                (r.id, str(r.key), r.planned_at.isoformat(), r.outcome.value, json.dumps(to_json(r)))
                for r in records
            ],
        )
    db.close()


def test_history_of_a_quiet_target_behind_10000_rows_of_a_busy_one(tmp_path: Path) -> None:
    """`history --target quiet` finds its rotations older than another target's newest 10,000, limit kept."""
    path = tmp_path / "state.db"
    SQLiteJournal(path).close()
    quiet = [
        replace(rotation(f"q{n}", at=NOW + timedelta(minutes=n)), key=OTHER_KEY, target="api-deploy")
        for n in range(3)
    ]
    busy = [rotation(f"b{n:05}", at=NOW + timedelta(hours=1, seconds=n)) for n in range(10_001)]
    _bulk(path, quiet + busy)
    config = parse_config(
        {
            "gitlab": {"url": KEY.gitlab_url},
            "targets": [
                {
                    "name": name,
                    "project": 42,
                    "connection_id": key.connection_id,
                    "token": {"scopes": ["api"]},
                }
                for name, key in (("app-deploy", KEY), ("api-deploy", OTHER_KEY))
            ],
        }
    )
    journal = SQLiteJournal(path, read_only=True)
    assert [row["rotation"] for row in report.history(journal, config, "api-deploy", 10)] == [
        "q2",
        "q1",
        "q0",
    ]
    assert [row["rotation"] for row in report.history(journal, config, "api-deploy", 2)] == ["q2", "q1"]
    assert len(report.history(journal, config, "app-deploy", 10_000)) == 10_000
    journal.close()
