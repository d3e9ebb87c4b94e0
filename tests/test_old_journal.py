"""A journal written by the previous release (f9a939a) still works: status, history, then a resumed run.

``tests/fixtures/journal-f9a939a.db`` was written by that release's own ``run-once`` and ``rotate``
against its fakes (``tests/fixtures/make_journal_f9a939a.py``): both example targets rotated, the
adopted tokens revoked, app-deploy rotated again, its previous token left a pending revoke. Its
schema predates the ``unresolved`` table. Each test runs on a copy, re-pointed at this test's
fakes, which are rebuilt to hold what the journal says they hold (see ``_rebuild``).
"""

import json
import shutil
import sqlite3

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rotator.testing import Fakes, start_fakes
from rotator.testing._clock import FakeClock
from tests.cli_harness import Harness


pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
JOURNAL = FIXTURES / "journal-f9a939a.db"
#: The fixture's fake clock at its first run (make_journal_f9a939a.STARTED).
STARTED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
#: app-deploy's token the second rotation retired, pending revoke until STARTED + 2h01m.
PENDING = 5


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    return names


def _replace_everywhere(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in every key and record of the journal at ``path``."""
    with sqlite3.connect(path) as db:
        for table in ("targets", "rotations", "tokens", "tombstones"):
            db.execute(
                f"UPDATE {table} SET key = replace(key, ?, ?), data = replace(data, ?, ?)",  # noqa: S608
                (old, new, old, new),
            )
        db.execute("UPDATE projects SET gitlab_url = replace(gitlab_url, ?, ?)", (old, new))
    db.close()


def _rebuild(fakes: Fakes, path: Path) -> None:
    """Give the fakes what the journal recorded, and re-point the journal's instance-bound values.

    The fakes mint the journal's tokens (same ids, names, projects; the adopted ones revoked) and
    each connection holds its target's current token. Two values name the fixture's fakes, not
    the journal's format, and are replaced in the copy: the GitLab URL (a port) in every key, and
    each connection's verified ``credentialsHash`` (a hash of ciphertext under that Infisical's key).
    """
    with sqlite3.connect(path) as db:
        tokens = db.execute("SELECT key, token_id, data FROM tokens ORDER BY token_id").fetchall()
        targets = db.execute("SELECT key, data FROM targets").fetchall()
    db.close()
    current: dict[str, int] = {}
    for key, token_id, data in tokens:
        record = json.loads(data)
        if token_id in fakes.seed.adopt_token_ids:  # the seed's own tokens, adopted then revoked
            assert record["revoked_at"] is not None
            fakes.gitlab.test_only_token(token_id).revoked = True
            continue
        project = fakes.gitlab.state.resources[("project", int(key.split("|")[1]))]
        minted = fakes.gitlab.seed_resource_token(project, record["name"], ["api"], days=30)
        assert minted.id == token_id  # the fakes number tokens as they did for the fixture
        if record["role"] == "current":
            current[key.split("|")[2]] = token_id
    for key, data in targets:
        connection_id = key.split("|")[2]
        value = fakes.gitlab.test_only_token(current[connection_id]).value
        connection = fakes.infisical.seed_connection(
            value, instance_url=fakes.seed.gitlab_url, connection_id=connection_id
        )
        held = connection.sanitized()["credentialsHash"]
        _replace_everywhere(path, json.loads(data)["verified_hash"], held)
    _replace_everywhere(path, targets[0][0].split("|")[0], fakes.seed.gitlab_url)


@pytest.fixture
def old(tmp_path: Path) -> Iterator[Harness]:
    """The fixture journal as ``state.db``, the fakes rebuilt to match, the clock past the grace."""
    with start_fakes(clock=FakeClock(STARTED + timedelta(hours=2, minutes=30))) as fakes:
        harness = Harness(fakes, tmp_path)
        journal = tmp_path / "state.db"
        shutil.copyfile(JOURNAL, journal)
        journal.chmod(0o600)
        _rebuild(fakes, journal)
        yield harness


def test_the_fixture_is_the_previous_releases_and_holds_no_token() -> None:
    """The fixture predates the unresolved table, and holds no token value (GitLab's) or JWT (Infisical's)."""
    assert _tables(JOURNAL) == {"targets", "rotations", "tokens", "tombstones", "projects"}
    content = JOURNAL.read_bytes()
    assert b"glpat-" not in content
    assert b"eyJ" not in content


def test_status_and_history_read_the_old_journal(old: Harness) -> None:
    """`status` and `history` on the old journal: exit 0, its rotations and pending revoke as recorded."""
    status = old.run("status", "--json")
    assert status.code == 0, status
    app = {row["target"]: row for row in status.json()["targets"]}["app-deploy"]
    assert [p["token_id"] for p in app["pending_revokes"]] == [PENDING]
    history = old.run("history", "--json")
    assert history.code == 0, history
    rows = history.json()
    # Newest first: app-deploy's forced rotation, then the first run's two (planned together).
    assert rows[0]["target"] == "app-deploy"
    assert sorted(r["target"] for r in rows[1:]) == ["api-deploy", "app-deploy"]
    assert all(r["outcome"] == "succeeded" for r in rows)
    assert rows[0]["retired"] == [{"token_id": PENDING, "revoked_at": None, "evidence": None}]
    table = old.run("history", "--target", "app-deploy")
    assert table.code == 0, table
    assert len(table.stdout.splitlines()) == 3  # the header and app-deploy's two rotations


def test_run_once_resumes_the_old_journal_and_revokes_the_pending_token(old: Harness) -> None:
    """run-once on the old journal: the due revoke happens, nothing else is sent, and status shows it."""
    assert old.fakes.gitlab.test_only_token(PENDING).active(old.fakes.clock.now())
    result = old.run("run-once")
    assert result.code == 0, result
    assert not old.fakes.gitlab.test_only_token(PENDING).active(old.fakes.clock.now())
    assert old.mutations() == 1  # the one DELETE: no create, no PATCH
    status = old.run("status", "--json")
    assert status.code == 0, status
    assert all(not row["pending_revokes"] for row in status.json()["targets"])
    assert "unresolved" in _tables(old.folder / "state.db")  # the schema was brought up to date
