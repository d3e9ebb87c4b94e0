"""The journal contract, run against every store (today: SQLite)."""

import contextlib
import json
import sqlite3
import stat
import tempfile

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator import report
from rotator.config import parse_config
from rotator.errors import ConfigError, JournalDamagedError, LeaseLostError
from rotator.journal_file import loose_permissions
from rotator.journal_sqlite import SQLiteJournal, damaged, sqlite_path
from rotator.model import (
    Change,
    Origin,
    Outcome,
    Role,
    RotationRecord,
    Step,
    TargetKey,
    TargetState,
    TokenRecord,
    Tombstone,
    UnresolvedProject,
)
from rotator.ports import Journal
from rotator.records import from_json, to_json
from rotator.redact import redact


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEY = TargetKey("https://gitlab.example.com", 42, "3c90c3cc-0d44-4b50-8888-8dd25736052a")
TTL = timedelta(minutes=10)


@pytest.fixture(params=["sqlite"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    """Each store, empty."""
    assert request.param == "sqlite"
    store = SQLiteJournal(tmp_path / "state.db")
    yield store
    store.close()


def _rotation(
    rotation_id: str = "r1", *, at: datetime = NOW, outcome: Outcome = Outcome.IN_PROGRESS
) -> RotationRecord:
    return RotationRecord(
        id=rotation_id,
        key=KEY,
        target="app-deploy",
        trigger="run-once",
        actor="host:1",
        step=Step.PLANNED,
        outcome=outcome,
        token_name="app-deploy-20261125-abcdef01",
        requested_expiry=date(2026, 12, 25),
        planned_at=at,
    )


def test_write_then_read_back_every_record(journal: Journal) -> None:
    """A fenced write records a rotation, tokens, the target state and a tombstone atomically."""
    lease = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    token = TokenRecord(KEY, 7, "app-deploy-x", Origin.CREATED, Role.CANDIDATE, date(2026, 12, 25), "r1")
    state = TargetState(KEY, "app-deploy", verified_hash="ab" * 32, verified_at=NOW)
    stone = Tombstone(KEY, "app-deploy-x", NOW + timedelta(days=3))
    journal.write(lease, Change(rotation=_rotation(), tokens=(token,), target=state, tombstones=(stone,)))
    assert journal.rotations(KEY) == [_rotation()]
    assert journal.tokens(KEY) == [token]
    assert journal.target(KEY) == state
    assert journal.tombstones(KEY) == [stone]
    assert journal.unfinished(KEY) == _rotation()
    journal.write(lease, Change(drop_tombstones=("app-deploy-x",)))
    assert journal.tombstones(KEY) == []


def test_a_second_worker_is_refused_while_the_lease_lives(journal: Journal) -> None:
    """Only one worker holds a target; another gets None until the lease expires."""
    assert journal.acquire(KEY, "app-deploy", "w1", NOW, TTL) is not None
    assert journal.acquire(KEY, "app-deploy", "w2", NOW + timedelta(minutes=5), TTL) is None
    later = journal.acquire(KEY, "app-deploy", "w2", NOW + timedelta(minutes=11), TTL)
    assert later is not None
    assert later.holder == "w2"


def test_a_worker_that_lost_its_lease_records_nothing(journal: Journal) -> None:
    """Fencing: after another worker takes over, the old lease's writes and renewals fail."""
    old = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert old is not None
    new = journal.acquire(KEY, "app-deploy", "w2", NOW + TTL + timedelta(seconds=1), TTL)
    assert new is not None
    assert new.fence > old.fence
    with pytest.raises(LeaseLostError):
        journal.write(old, Change(rotation=_rotation()))
    with pytest.raises(LeaseLostError):
        journal.renew(old, NOW, TTL)
    assert journal.rotations(KEY) == []
    journal.write(new, Change(rotation=_rotation()))
    assert len(journal.rotations(KEY)) == 1


def test_release_frees_the_target(journal: Journal) -> None:
    """A released lease can be taken at once by another worker, with a higher fence."""
    first = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert first is not None
    journal.release(first)
    second = journal.acquire(KEY, "app-deploy", "w2", NOW, TTL)
    assert second is not None
    assert second.fence == first.fence + 1


def test_renew_extends_the_lease(journal: Journal) -> None:
    """A renewed lease keeps other workers out past the original expiry."""
    lease = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    renewed = journal.renew(lease, NOW + timedelta(minutes=9), TTL)
    assert journal.acquire(KEY, "app-deploy", "w2", NOW + timedelta(minutes=12), TTL) is None
    journal.write(renewed, Change(rotation=_rotation()))


def test_rotations_are_newest_first_and_limited(journal: Journal) -> None:
    """History lists newest first; ``unfinished`` finds only the in-progress one."""
    lease = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    for day in range(5):
        outcome = Outcome.IN_PROGRESS if day == 4 else Outcome.SUCCEEDED
        journal.write(
            lease, Change(rotation=_rotation(f"r{day}", at=NOW + timedelta(days=day), outcome=outcome))
        )
    assert [r.id for r in journal.rotations(KEY, limit=3)] == ["r4", "r3", "r2"]
    assert [r.id for r in journal.rotations(None, limit=10)] == ["r4", "r3", "r2", "r1", "r0"]
    unfinished = journal.unfinished(KEY)
    assert unfinished is not None
    assert unfinished.id == "r4"


def test_last_rotation_is_the_newest_by_one_of_the_triggers(journal: Journal) -> None:
    """``last_rotation`` skips other triggers and other targets, and is None when nothing matches."""
    lease = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    other = replace(KEY, project_id=43)
    other_lease = journal.acquire(other, "api-deploy", "w1", NOW, TTL)
    assert lease is not None
    assert other_lease is not None
    for minute, trigger in enumerate(("http", "rotate", "schedule", "run-once")):
        record = replace(_rotation(f"r{minute}", at=NOW + timedelta(minutes=minute)), trigger=trigger)
        journal.write(lease, Change(rotation=record))
    later = replace(_rotation("elsewhere", at=NOW + timedelta(hours=1)), key=other, trigger="http")
    journal.write(other_lease, Change(rotation=later))
    found = journal.last_rotation(KEY, {"http", "rotate"})
    assert found is not None
    assert (found.id, found.trigger) == ("r1", "rotate")
    only_http = journal.last_rotation(KEY, {"http"})
    assert only_http is not None
    assert only_http.id == "r0"
    assert journal.last_rotation(KEY, {"demo"}) is None
    assert journal.last_rotation(KEY, ()) is None


def test_project_paths_are_remembered(journal: Journal) -> None:
    """A resolved path is found again without asking GitLab."""
    assert journal.project_id(KEY.gitlab_url, "acme/app") is None
    journal.remember_project(KEY.gitlab_url, "acme/app", 42)
    assert journal.project_id(KEY.gitlab_url, "acme/app") == 42
    assert journal.project_id("https://other.example.com", "acme/app") is None


UNRESOLVED = UnresolvedProject(
    KEY.gitlab_url,
    "acme/gone",
    since=NOW,
    at=NOW + timedelta(minutes=5),
    failures=2,
    status=404,
    error="target=app-deploy step=resolve gitlab GET /projects/:id -> 404: 404 Project Not Found",
)


def test_a_failure_to_resolve_a_path_is_kept_until_the_path_resolves(journal: Journal) -> None:
    """A resolve failure is read back by URL and path (no lease needed) and dropped once the path resolves."""
    journal.record_unresolved(UNRESOLVED)
    assert journal.unresolved(KEY.gitlab_url, "acme/gone") == UNRESOLVED
    assert journal.unresolved(KEY.gitlab_url, "acme/app") is None
    assert journal.unresolved("https://other.example.com", "acme/gone") is None
    journal.remember_project(KEY.gitlab_url, "acme/gone", 44)
    assert journal.unresolved(KEY.gitlab_url, "acme/gone") is None
    assert journal.targets() == []


def test_a_journal_written_before_resolve_failures_were_kept_still_reads(tmp_path: Path) -> None:
    """No ``unresolved`` table: read-only it reads as no failure; opened to write, the table is added."""
    path = tmp_path / "state.db"
    first = SQLiteJournal(path)
    lease = first.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    first.write(lease, Change(rotation=_rotation()))
    first.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("DROP TABLE unresolved")  # the schema of the versions before it
    old = SQLiteJournal(path, read_only=True)
    assert old.unresolved(KEY.gitlab_url, "acme/gone") is None
    assert [t.name for t in old.targets()] == ["app-deploy"]
    old.close()
    upgraded = SQLiteJournal(path)
    assert upgraded.unfinished(KEY) == _rotation()
    upgraded.record_unresolved(UNRESOLVED)
    assert upgraded.unresolved(KEY.gitlab_url, "acme/gone") == UNRESOLVED
    upgraded.close()


def test_records_survive_reopening(tmp_path: Path) -> None:
    """What one process wrote, the next one reads."""
    path = tmp_path / "state.db"
    first = SQLiteJournal(path)
    lease = first.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    first.write(lease, Change(rotation=_rotation()))
    first.close()
    second = SQLiteJournal(path)
    assert second.unfinished(KEY) == _rotation()
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
        _rotation(), step=step, outcome=outcome, new_token_id=new_id, verified_at=verified, error=error
    )
    shown = replace(record, error=None if error is None else redact(error))
    assert from_json(RotationRecord, to_json(record)) == shown


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


def test_owners_finds_a_token_across_targets_of_one_gitlab(journal: Journal) -> None:
    """``owners`` names each key on that GitLab tracking a token id, with its role; other GitLabs never."""
    other = TargetKey(KEY.gitlab_url, 43, "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")
    elsewhere = TargetKey("https://gitlab.other.example.com", 42, KEY.connection_id)
    for key, name, role in ((KEY, "app-deploy", Role.CURRENT), (other, "api-deploy", Role.PENDING_REVOKE)):
        lease = journal.acquire(key, name, "w1", NOW, TTL)
        assert lease is not None
        journal.write(lease, Change(tokens=(TokenRecord(key, 7, "t", Origin.ADOPTED, role, None),)))
    lease = journal.acquire(elsewhere, "far", "w1", NOW, TTL)
    assert lease is not None
    journal.write(lease, Change(tokens=(TokenRecord(elsewhere, 7, "t", Origin.CREATED, Role.CURRENT, None),)))
    owners = journal.owners(KEY.gitlab_url, 7)
    assert {(o.key, o.target, o.role) for o in owners} == {
        (KEY, "app-deploy", Role.CURRENT),
        (other, "api-deploy", Role.PENDING_REVOKE),
    }
    assert journal.owners(KEY.gitlab_url, 8) == []


def test_owners_sees_one_instance_however_its_url_is_spelled(journal: Journal) -> None:
    """A key recorded as ``https://GitLab.example.com:443/`` owns the token for ``https://gitlab.example.com``."""
    spelled = TargetKey("https://GitLab.example.com:443/", 42, "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")
    lease = journal.acquire(spelled, "old-spelling", "w1", NOW, TTL)
    assert lease is not None
    journal.write(lease, Change(tokens=(TokenRecord(spelled, 9, "t", Origin.CREATED, Role.CURRENT, None),)))
    assert [(o.key, o.role) for o in journal.owners(KEY.gitlab_url, 9)] == [(spelled, Role.CURRENT)]
    assert journal.owners("https://gitlab.example.com:8443", 9) == []
    assert journal.owners("http://gitlab.example.com", 9) == []


def test_codec_round_trips_the_untracked_list() -> None:
    """A target's untracked-token list (nested tuples) survives to_json/from_json unchanged."""
    state = TargetState(KEY, "app-deploy", untracked=((12, "by-hand", "2026-12-31"), (13, "x", None)))
    assert from_json(TargetState, to_json(state)) == state


def test_forget_drops_a_key_but_keeps_its_rotations(journal: Journal) -> None:
    """`forget` drops a key's state, tokens and tombstones; rotations stay, an unfinished one closed."""
    lease = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    token = TokenRecord(KEY, 7, "app-deploy-x", Origin.CREATED, Role.CURRENT, date(2026, 12, 25), "r1")
    stone = Tombstone(KEY, "app-deploy-y", NOW + timedelta(days=3))
    journal.write(lease, Change(rotation=_rotation(), tokens=(token,), tombstones=(stone,)))
    other = replace(KEY, project_id=43)
    other_lease = journal.acquire(other, "api-deploy", "w1", NOW, TTL)
    assert other_lease is not None
    journal.write(other_lease, Change(tokens=(replace(token, key=other),)))
    journal.forget(lease, "forgotten by the operator")
    assert (journal.target(KEY), journal.tokens(KEY), journal.tombstones(KEY)) == (None, [], [])
    assert [s.key for s in journal.targets()] == [other]
    assert journal.unfinished(KEY) is None
    [kept] = journal.rotations(KEY)
    assert (kept.outcome, kept.error) == (Outcome.FAILED, "forgotten by the operator")
    assert len(journal.tokens(other)) == 1
    with pytest.raises(LeaseLostError):
        journal.forget(lease, "again")


def _written(path: Path) -> None:
    """A journal at ``path`` holding one rotation and one target."""
    store = SQLiteJournal(path)
    lease = store.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    store.write(lease, Change(rotation=_rotation()))
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
    assert store.unfinished(KEY) == _rotation()
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
        store.write(lease, Change(rotation=_rotation(f"r{n:03}", at=NOW + timedelta(seconds=n))))
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


def test_recorded_names_include_a_target_no_longer_configured(journal: Journal) -> None:
    """Each (key, name) a rotation was recorded under comes back once."""
    lease = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    journal.write(lease, Change(rotation=_rotation("r1")))
    journal.write(lease, Change(rotation=replace(_rotation("r2"), target="renamed")))
    journal.write(lease, Change(rotation=_rotation("r3", outcome=Outcome.SUCCEEDED)))
    assert sorted(journal.recorded_names(), key=lambda pair: pair[1]) == [
        (KEY, "app-deploy"),
        (KEY, "renamed"),
    ]


OTHER_KEY = replace(KEY, connection_id="7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")


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
        replace(_rotation(f"q{n}", at=NOW + timedelta(minutes=n)), key=OTHER_KEY, target="api-deploy")
        for n in range(3)
    ]
    busy = [_rotation(f"b{n:05}", at=NOW + timedelta(hours=1, seconds=n)) for n in range(10_001)]
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
