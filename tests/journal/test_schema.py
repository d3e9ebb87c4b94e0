"""Schema versions: each store creates and migrates its own schema, and refuses a newer one."""

import shutil
import sqlite3
import threading

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from rotator.core.errors import ConfigError, JournalUnavailableError
from rotator.core.model import TriggerRequest
from rotator.journal import postgres_schema, sqlite_schema
from rotator.journal.postgres import Limits, PostgresJournal, has_journal
from rotator.journal.sqlite import SQLiteJournal
from tests.postgres import fresh_schema


#: A journal written by the release before versioning (see tests/test_old_journal.py).
OLD = Path(__file__).parents[1] / "fixtures" / "journal-f9a939a.db"
#: Later than any lease the fixture recorded, so its leases have all lapsed.
FAR = datetime(2100, 1, 1, tzinfo=UTC)
TTL = timedelta(minutes=10)


def _reads(journal: SQLiteJournal) -> tuple[object, ...]:
    targets = journal.targets()
    return (
        targets,
        journal.rotations(None, 1000),
        [journal.tokens(t.key) for t in targets],
        [journal.tombstones(t.key) for t in targets],
    )


def _version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        version = sqlite_schema.found_version(db)
    db.close()
    return version


def test_an_unversioned_sqlite_journal_upgrades_in_place_with_its_records(tmp_path: Path) -> None:
    """The previous release's journal opens for writing: version added, every record read back as before."""
    path = tmp_path / "state.db"
    shutil.copyfile(OLD, path)
    assert _version(path) == 0  # unversioned
    before = SQLiteJournal(path, read_only=True)
    expected = _reads(before)
    before.close()
    assert _version(path) == 0  # read-only changes nothing
    journal = SQLiteJournal(path)
    assert _reads(journal) == expected
    assert expected[0]  # the fixture holds targets and rotations: the comparison is not of nothing
    # The tables a later version added work at once: a trigger request, the rotations it planned.
    request = TriggerRequest("q1", "app-deploy", datetime.now(UTC), replica="here")
    assert journal.add_request(request, request.requested_at, timedelta(minutes=1)).claim == 1
    assert journal.request_rotations("q1") == []
    journal.close()
    assert _version(path) == sqlite_schema.VERSION
    again = SQLiteJournal(path)
    assert _reads(again) == expected
    again.close()


def test_a_forgotten_key_in_an_upgraded_sqlite_journal_keeps_its_fence(tmp_path: Path) -> None:
    """After the upgrade, forget then acquire continues from the key's fence (version 2's table)."""
    path = tmp_path / "state.db"
    shutil.copyfile(OLD, path)
    journal = SQLiteJournal(path)
    state = journal.targets()[0]
    with sqlite3.connect(path) as db:
        (fence,) = db.execute("SELECT fence FROM targets WHERE key = ?", (str(state.key),)).fetchone()
    db.close()
    lease = journal.acquire(state.key, state.name, "w1", FAR, TTL)
    assert lease is not None
    assert lease.fence == fence + 1
    journal.forget(lease, "forgotten")
    again = journal.acquire(state.key, state.name, "w1", FAR, TTL)
    assert again is not None
    assert again.fence == fence + 2
    journal.close()


@pytest.mark.parametrize("read_only", [False, True])
def test_a_newer_sqlite_schema_is_refused(tmp_path: Path, read_only: bool) -> None:
    """A journal from a later rotator: ConfigError on state.url asking for an upgrade; the file untouched."""
    path = tmp_path / "state.db"
    SQLiteJournal(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = ?", (sqlite_schema.VERSION + 1,))
    db.close()
    with pytest.raises(ConfigError) as refused:
        SQLiteJournal(path, read_only=read_only)
    assert str(refused.value) == (
        f"state.url: the journal's schema is version {sqlite_schema.VERSION + 1};"
        f" this rotator knows up to {sqlite_schema.VERSION}: upgrade rotator"
    )
    assert _version(path) == sqlite_schema.VERSION + 1


def test_postgres_creates_its_schema_once_and_refuses_a_newer_one() -> None:
    """A fresh schema gets the current version; reopening changes nothing; a newer version is refused."""
    with fresh_schema() as url:
        PostgresJournal(url).close()
        PostgresJournal(url).close()
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT version FROM schema_version").fetchall() == [
                (postgres_schema.VERSION,)
            ]
            conn.execute("UPDATE schema_version SET version = 99")
        for read_only in (False, True):
            with pytest.raises(ConfigError, match="schema is version 99; this rotator knows up to"):
                PostgresJournal(url, read_only=read_only)


def test_postgres_refuses_a_database_holding_another_applications_tables() -> None:
    """Tables named like the journal's but no schema_version: refused, nothing created."""
    with fresh_schema() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE targets (id int)")
        with pytest.raises(ConfigError, match="holds tables \\(targets\\) but no rotator journal"):
            PostgresJournal(url)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('schema_version')").fetchone() == (None,)


@pytest.mark.parametrize("table", ["projects", "unresolved"])
def test_postgres_refuses_another_applications_table_named_like_any_of_the_journals(table: str) -> None:
    """Another application's ``projects`` (or ``unresolved``) table: exit-2 ConfigError, nothing created."""
    with fresh_schema() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {table} (id int)".encode())
        with pytest.raises(ConfigError, match=f"holds tables \\({table}\\) but no rotator journal"):
            PostgresJournal(url)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('schema_version')").fetchone() == (None,)


def test_looking_for_a_postgres_journal_gives_up_when_the_database_does_not_answer() -> None:
    """has_journal (status, history, state copy) is bounded by the statement timeout, not left hanging."""
    with fresh_schema() as url:
        PostgresJournal(url).close()
        with psycopg.connect(url) as blocker:
            blocker.execute("LOCK TABLE schema_version IN ACCESS EXCLUSIVE MODE")  # a migration in progress
            outcome: list[object] = []

            def look() -> None:
                try:
                    outcome.append(has_journal(url, limits=Limits(connect=2, statement=0.3, lock=0.3)))
                except JournalUnavailableError as error:
                    outcome.append(error)

            worker = threading.Thread(target=look, daemon=True)
            worker.start()
            worker.join(timeout=10)
            blocker.rollback()  # lets a hanging look finish, so the schema can be dropped
        worker.join(timeout=10)
        assert len(outcome) == 1
        assert isinstance(outcome[0], JournalUnavailableError)
        assert "canceling statement due to" in str(outcome[0])
