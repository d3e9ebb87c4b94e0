"""The commands on a PostgreSQL journal: each test in a freshly created database, dropped afterwards."""

import secrets
import subprocess
import sys

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from rotator.journal.postgres_schema import VERSION
from rotator.testing import Fakes
from tests.cli_harness import Harness
from tests.postgres import fresh_database, refusing_server


pytestmark = pytest.mark.slow


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh, empty database's URL (no password: trust auth)."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path, database: str) -> Harness:
    """Both example targets against the fakes, the journal in the fresh database."""
    harness = Harness(fakes, tmp_path)
    harness.state_url = database
    harness.write_config()
    return harness


def test_run_once_status_and_history_work_on_postgresql(h: Harness, database: str) -> None:
    """run-once rotates both targets, recording in the database; status and history read it; no file made."""
    first = h.run("run-once")
    assert first.code == 0, first.stderr
    assert h.held_works(0)
    assert h.held_works(1)
    status = h.run("status", "--json")
    assert status.code == 0, status.stderr
    adopted = h.fakes.seed.adopt_token_ids[0]
    assert [t["target"] for t in status.json()["targets"]] == ["app-deploy", "api-deploy"]
    assert status.json()["targets"][0]["pending_revokes"][0]["token_id"] == adopted
    h.fakes.clock.advance(timedelta(minutes=61))
    second = h.run("run-once")
    assert second.code == 0, second.stderr
    assert adopted not in h.active_tokens(0)
    history = h.run("history", "--target", "app-deploy", "--json").json()
    assert history[0]["retired"][0]["token_id"] == adopted
    assert sorted(p.name for p in h.folder.iterdir()) == ["rotator.yaml"]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM rotations").fetchone() == (2,)


def test_status_before_any_run_says_there_is_no_journal_and_creates_none(h: Harness, database: str) -> None:
    """A status on an empty database: exit 2 saying run-once creates the journal; no table is created."""
    done = h.run("status")
    assert done.code == 2
    assert "state.url: no journal in the database at 127.0.0.1:5432/" in done.stderr
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT to_regclass('schema_version')").fetchone() == (None,)


def test_an_unreachable_database_is_one_line_exit_1_without_the_password(h: Harness) -> None:
    """Nothing listening: exit 1, one line naming host:port, no traceback, the password nowhere."""
    h.state_url = "postgresql://rotator@127.0.0.1:1/rotator?connect_timeout=2"
    h.write_config()
    password = "pg-Secret-never-shown-42"
    for command in ("run-once", "status"):
        done = h.run(command, extra_env={"ROTATOR_STATE_PASSWORD": password})
        assert done.code == 1, done.stderr
        lines = done.stderr.splitlines()
        assert lines[-1].startswith("rotator: error: state.url: the journal's database at 127.0.0.1:1: ")
        assert "Traceback" not in done.stderr
        assert password not in done.stderr + done.stdout
    assert h.mutations() == 0


def test_a_password_in_the_url_is_refused_without_echoing_it(h: Harness) -> None:
    """postgres://user:password@...: exit 2 naming state.url and the variables to use instead."""
    h.state_url = "postgres://rotator:hunter2-in-url@127.0.0.1:5432/rotator"
    h.write_config()
    done = h.run("run-once")
    assert done.code == 2
    assert "state.url" in done.stderr
    assert "ROTATOR_STATE_PASSWORD" in done.stderr
    assert "hunter2-in-url" not in done.stderr
    assert h.calls() == 0


def test_a_journal_schema_newer_than_this_rotator_is_refused(h: Harness, database: str) -> None:
    """A schema version from a later rotator: exit 2 asking for an upgrade, for writers and readers alike."""
    assert h.run("run-once").code == 0
    with psycopg.connect(database) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (VERSION + 1,))
    expected = (
        f"rotator: error: state.url: the journal's schema is version {VERSION + 1};"
        f" this rotator knows up to {VERSION}: upgrade rotator\n"
    )
    for command in ("run-once", "status"):
        done = h.run(command)
        assert (done.code, done.stderr[-len(expected) :]) == (2, expected)


_OPEN = """
import sys
from rotator.journal.postgres import PostgresJournal
sys.stdin.readline()
PostgresJournal(sys.argv[1]).close()
"""


def test_processes_opening_a_fresh_database_together_all_succeed(database: str) -> None:
    """Six processes create the schema at once: the advisory lock lets one create it, the rest find it."""
    with ExitStack() as stack:
        children = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", _OPEN, database],
                    stdin=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for _ in range(6)
        ]
        for child in children:  # released together once every interpreter has started
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [(child.communicate(timeout=60)[1], child.returncode) for child in children]
    assert results == [("", 0)] * 6
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(VERSION,)]


def test_an_option_libpq_does_not_know_is_exit_2_naming_it(h: Harness) -> None:
    """?colour=blue in state.url: exit 2 with libpq's words, nothing sent upstream."""
    h.state_url += "?colour=blue"
    h.write_config()
    done = h.run("run-once")
    assert done.code == 2
    assert 'state.url: libpq cannot read it: invalid URI query parameter: "colour"' in done.stderr
    assert h.calls() == 0


#: What PostgreSQL answers a wrong password with (SQLSTATE 28P01).
BAD_PASSWORD = ("28P01", 'password authentication failed for user "rotator"')


@pytest.mark.parametrize("variable", ["ROTATOR_STATE_PASSWORD", "ROTATOR_STATE_PASSWORD_FILE"])
def test_a_refused_password_is_a_usage_error_naming_its_variable(
    fakes: Fakes, tmp_path: Path, variable: str
) -> None:
    """The database refusing the password (28P01): exit 2 naming the variable it came from."""
    password = f"pg-{secrets.token_hex(8)}"
    if variable.endswith("_FILE"):
        (tmp_path / "pw").write_text(password + "\n")
        env = {variable: str(tmp_path / "pw")}
    else:
        env = {variable: password}
    h = Harness(fakes, tmp_path)
    with refusing_server(*BAD_PASSWORD) as (port, sent):
        h.state_url = f"postgresql://rotator@127.0.0.1:{port}/rotator"
        h.write_config()
        for command in ("run-once", "status"):
            done = h.run(command, extra_env=env)
            assert done.code == 2, done.stderr
            assert done.stderr.splitlines()[-1].startswith(
                f"rotator: error: {variable}: the journal's database at 127.0.0.1:{port} refused to sign in: "
            )
            assert BAD_PASSWORD[1] in done.stderr
            assert password not in done.stderr + done.stdout
    assert set(sent) == {password}  # the refusal was of that very password
    assert h.mutations() == 0


@pytest.mark.parametrize(
    "refusal",
    [
        (
            "28000",
            'no pg_hba.conf entry for host "127.0.0.1", user "rotator", database "rotator"',
            "state.url",
        ),
        (*BAD_PASSWORD, "ROTATOR_STATE_PASSWORD"),
    ],
    ids=["account-refused", "no-password-given"],
)
def test_a_refused_account_or_a_missing_password_is_a_usage_error(
    fakes: Fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: tuple[str, str, str]
) -> None:
    """pg_hba.conf refusing the user names state.url; a password asked for but given nowhere, the variable."""
    sqlstate, message, key = refusal
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-passfile"))  # libpq finds no password there either
    h = Harness(fakes, tmp_path)
    with refusing_server(sqlstate, message, ask=sqlstate == "28P01") as (port, _):
        h.state_url = f"postgresql://rotator@127.0.0.1:{port}/rotator"
        h.write_config()
        done = h.run("run-once")
    assert done.code == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"rotator: error: {key}: ")
    assert "refused to sign in" in done.stderr
