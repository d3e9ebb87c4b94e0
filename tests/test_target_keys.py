"""Journal keys per target kind: project keys exactly as before kinds, new kinds apart, both stored."""

import json
import shutil
import sqlite3

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.model import Kind, Origin, Owner, Role, TargetKey, TokenRecord
from rotator.journal.codec import from_json, to_json
from rotator.journal.sqlite import SQLiteJournal


URL = "https://gitlab.example.com"
CONNECTION = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
OLD_JOURNAL = Path(__file__).parent / "fixtures" / "journal-f9a939a.db"
NOW = datetime(2026, 7, 1, tzinfo=UTC)

owners = st.one_of(
    st.builds(Owner, st.sampled_from([Kind.PROJECT, Kind.GROUP]), st.integers(1, 10**9)),
    st.builds(
        Owner,
        st.just(Kind.SERVICE_ACCOUNT),
        st.integers(1, 10**9),
        st.sampled_from([Kind.GROUP, Kind.PROJECT]),
        st.integers(1, 10**9),
    ),
    st.builds(Owner, st.just(Kind.SERVICE_ACCOUNT), st.integers(1, 10**9)),
)


def test_a_project_key_reads_as_before_kinds() -> None:
    """A project key's string and JSON are what the journal held before kinds."""
    key = TargetKey.of(URL, Owner(Kind.PROJECT, 42), CONNECTION)
    assert str(key) == f"{URL}|42|{CONNECTION}"
    assert key == TargetKey(URL, 42, CONNECTION)
    record = to_json(TokenRecord(key, 7, "app", Origin.CREATED, Role.CURRENT, None))
    assert record["key"] == {"gitlab_url": URL, "project_id": 42, "connection_id": CONNECTION}


def test_each_kind_has_its_own_key() -> None:
    """The same id as a project, a group or a service account makes three distinct keys."""
    keys = {
        str(TargetKey.of(URL, owner, CONNECTION))
        for owner in (
            Owner(Kind.PROJECT, 7),
            Owner(Kind.GROUP, 7),
            Owner(Kind.SERVICE_ACCOUNT, 7),
            Owner(Kind.SERVICE_ACCOUNT, 7, Kind.GROUP, 7),
            Owner(Kind.SERVICE_ACCOUNT, 7, Kind.PROJECT, 7),
        )
    }
    assert keys == {
        f"{URL}|7|{CONNECTION}",
        f"{URL}|group:7|{CONNECTION}",
        f"{URL}|service_account:7|{CONNECTION}",
        f"{URL}|service_account:7@group:7|{CONNECTION}",
        f"{URL}|service_account:7@project:7|{CONNECTION}",
    }


@given(owners)
def test_a_key_and_its_owner_survive_the_codec(owner: Owner) -> None:
    """Any owner's key comes back from JSON equal, naming the same owner."""
    key = TargetKey.of(URL, owner, CONNECTION)
    record = TokenRecord(key, 1, "n", Origin.CREATED, Role.CURRENT, date(2026, 8, 1))
    back = from_json(TokenRecord, json.loads(json.dumps(to_json(record))))
    assert back == record
    assert back.key.owner == owner


def test_an_existing_journal_keeps_its_keys_and_takes_new_kinds(tmp_path: Path) -> None:
    """The previous release's SQLite journal opens in place: its keys name projects; a group key joins."""
    path = tmp_path / "journal.db"
    shutil.copy(OLD_JOURNAL, path)
    with sqlite3.connect(path) as db:
        stored = {key for (key,) in db.execute("SELECT key FROM targets")}
    db.close()
    journal = SQLiteJournal(path)
    try:
        states = journal.targets()
        assert {str(state.key) for state in states} == stored
        assert {state.key.owner.kind for state in states} == {Kind.PROJECT}
        for state in states:
            assert journal.tokens(state.key)  # the old records are found under the same keys
        group = TargetKey.of(URL, Owner(Kind.GROUP, states[0].key.project_id), CONNECTION)
        lease = journal.acquire(group, "platform", "test", NOW, timedelta(minutes=5))
        assert lease is not None
        assert journal.target(group) is not None
        assert journal.target(states[0].key) == states[0]  # a group key with a project's id is another key
    finally:
        journal.close()
