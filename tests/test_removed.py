"""Removed targets, in process: which key owns a connection nobody configures any more."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from rotator.core.model import Change, Origin, Role, TargetKey, TargetState, TokenRecord
from rotator.doors.config import engine_spec, parse_config
from rotator.engine.context import Context
from rotator.engine.removed import find_removed, plan_removed
from rotator.engine.run import Engine, RunOptions
from rotator.journal.sqlite import SQLiteJournal


URL = "https://gitlab.example.com"
CONNECTION = "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71"
T1 = datetime(2026, 11, 1, tzinfo=UTC)
GRACE = timedelta(hours=1)


def _entry(journal: SQLiteJournal, key: TargetKey, token_id: int, verified_at: datetime) -> None:
    lease = journal.acquire(key, "app-deploy", "test", verified_at, timedelta(minutes=1))
    assert lease is not None
    current = TokenRecord(key, token_id, f"t{token_id}", Origin.CREATED, Role.CURRENT, date(2027, 1, 1))
    retired = TokenRecord(
        key,
        token_id - 1,
        f"t{token_id - 1}",
        Origin.CREATED,
        Role.REVOKED,
        date(2027, 1, 1),
        retired_at=verified_at,
        revoke_after=verified_at + GRACE,
    )
    state = TargetState(key, "app-deploy", verified_hash=f"{token_id:064x}", verified_at=verified_at)
    journal.write(lease, Change(tokens=(current, retired), target=state))
    journal.release(lease)


CONFIG = {
    "gitlab": {"url": URL},
    "targets": [
        {
            "name": "other",
            "project": 9,
            "connection_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "token": {"scopes": ["api"]},
        }
    ],
}


def test_an_older_key_is_retired_by_the_later_push_of_another_removed_key(tmp_path: Path) -> None:
    """Re-pointed, then removed: the older key's current token is due after the later push's grace."""
    config = parse_config(CONFIG)
    journal = SQLiteJournal(tmp_path / "state.db")
    older, later = TargetKey(URL, 1, CONNECTION), TargetKey(URL, 2, CONNECTION)
    _entry(journal, older, 11, T1)
    _entry(journal, later, 22, T1 + timedelta(days=1))
    now = T1 + timedelta(days=1) + GRACE + timedelta(minutes=1)
    found = {str(r.key): r for r in find_removed(engine_spec(config), journal, now)}
    old_plan = plan_removed(journal, found[str(older)], now)
    assert [t.token_id for t in old_plan.due] == [11]
    new_plan = plan_removed(journal, found[str(later)], now)
    assert new_plan.due == ()
    assert "22 (current)" in new_plan.left[0]
    journal.close()


def test_three_removed_keys_of_one_name_and_project_each_get_their_own_run(tmp_path: Path) -> None:
    """Three keys named app-deploy in project 1 (three connections): each one's revoke is planned."""
    journal = SQLiteJournal(tmp_path / "state.db")
    connections = ("11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002")
    for token_id, connection in zip((11, 21, 31), (CONNECTION, *connections), strict=True):
        _entry(journal, TargetKey(URL, 1, connection), token_id, T1)
    now = T1 + timedelta(days=1)
    unused = cast("Any", None)  # a dry run reads the journal only
    ctx = Context(unused, unused, journal, lambda: now, lambda _s: None, lambda: 0.0, URL, "test")
    reports = Engine(engine_spec(parse_config(CONFIG)), ctx).run(RunOptions(dry_run=True))[1:]
    assert len({r.name for r in reports}) == 3
    planned = [token_id for r in reports for token_id in (11, 21, 31) if f"token {token_id} " in r.detail]
    assert sorted(planned) == [11, 21, 31]
    journal.close()
