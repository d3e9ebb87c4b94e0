"""A replica that loses its database sends nothing upstream until it has a journal again; all converges."""

import time

from urllib.parse import urlsplit

import psycopg
import pytest

from tests.ha.conftest import MakeFleet
from tests.ha.fleet import CREATE, PATCH, wait_until
from tests.ha.pgproxy import Proxy


pytestmark = pytest.mark.exhaustive


def test_a_terminated_database_session_mid_rotation(make_fleet: MakeFleet) -> None:
    """pg_terminate_backend on the holder's sessions during its PATCH: it reconnects before acting again."""
    fleet = make_fleet(1)
    slow = fleet.host.arm("infisical", PATCH, "latency", seconds=3)
    fleet.start("r0", "r1")
    assert fleet.host.reached(slow, 60)
    holder = fleet.caller_of_last(PATCH)
    mine = "SELECT {} FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s"
    with psycopg.connect(fleet.database, autocommit=True) as conn:
        killed_at = time.time()
        ended = conn.execute(mine.format("pg_terminate_backend(pid)").encode(), (f"rotator-{holder}",))
        assert any(row[0] for row in ended)
    fleet.wait_all_rotated()
    with psycopg.connect(fleet.database, autocommit=True) as conn:
        rows = conn.execute(mine.format("backend_start").encode(), (f"rotator-{holder}",)).fetchall()
    sessions = [row[0].timestamp() for row in rows if row[0].timestamp() > killed_at]
    # Every request the holder sent after the kill came after it had a database session again.
    after = [c["start"] for c in fleet.calls() if c["caller"] == holder and c["start"] > killed_at]
    if after:
        assert sessions, "the holder sent requests but never reconnected"
        assert min(after) > min(sessions), (after, sessions)
    fleet.check()
    assert fleet.succeeded() == {"p0-deploy": 1}
    fleet.converge()
    assert fleet.succeeded() == {"p0-deploy": 1}


def test_a_replica_cut_off_its_database_sends_nothing_until_it_is_back(make_fleet: MakeFleet) -> None:
    """PostgreSQL unreachable for r0 mid-rotation: r0 sends nothing; r1 takes over; r0 rejoins, no double."""
    fleet = make_fleet(1)
    parts = urlsplit(fleet.database)
    with Proxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as proxy:
        slow = fleet.host.arm("gitlab", CREATE, "latency", seconds=2)
        (r0,) = fleet.start("r0", via=proxy)
        assert fleet.host.reached(slow, 60)
        proxy.cut()
        cut_at = time.time()
        fleet.start("r1")
        # r0 cannot renew its lease: it lapses (5 s, the database's clock) and r1 resumes at PLANNED.
        fleet.wait_all_rotated()
        sent = [c for c in fleet.calls() if c["caller"] == "r0" and c["start"] >= cut_at]
        assert sent == [], sent
        proxy.restore()
        assert r0.client is not None
        client = r0.client
        wait_until(lambda: client.get("/readyz").json()["journal"] == "ok", 60, "r0's journal back")
        # Its create, answered while it was cut off, was never recorded: r1 revoked it and rotated.
        project = fleet.targets[0]["project"]
        assert fleet.creates("r0") == {project: 1}
        assert fleet.creates("r1") == {project: 1}
        fleet.check()
        fleet.converge()
    assert fleet.succeeded() == {"p0-deploy": 1}
