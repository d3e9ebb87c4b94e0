"""Trigger requests in a shared journal: any replica answers for one; one whose replica died ends once.

Two daemons in this process share one journal (a PostgreSQL database, or an SQLite file). The
replica that accepts a request "dies" by never running its scheduler (so it never starts the run
nor renews its claim), or by the engine's crash hook right after a recorded step.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

from rotator.adapters.metrics import Metrics
from rotator.core.model import RequestStatus, Step, TriggerRequest
from rotator.doors.daemon import Daemon
from rotator.engine.run import RunOptions
from rotator.testing import Fakes
from tests.postgres import fresh_database
from tests.test_web import APP, finished, running_daemon, wait_until


CREATE = "POST /api/v4/projects/:id/access_tokens"


class Crashed(BaseException):
    """The accepting replica's process ends here: no handler of the engine's catches it."""


def _crash() -> NoReturn:
    raise Crashed


def _creates(fakes: Fakes) -> int:
    return fakes.gitlab.call_counts(user_agent="rotator/").get(CREATE, 0)


def test_on_postgresql_any_replica_answers_and_finishes_a_dead_replicas_request(
    fakes: Fakes, tmp_path: Path
) -> None:
    """A accepts and dies; B answers for the request, takes it over once its claim lapses, rotates once."""
    with (
        fresh_database() as url,
        running_daemon(fakes, tmp_path, state_url=url) as b,
        running_daemon(fakes, tmp_path, scheduled=False, state_url=url) as a,
        a.client() as one,
        b.client() as two,
    ):
        creates = _creates(fakes)
        accepted = one.post(f"/v1/targets/{APP}/rotate")
        assert accepted.status_code == 202, accepted.text
        request = accepted.json()["id"]
        seen = two.get(f"/v1/rotations/{request}")
        assert (seen.status_code, seen.json()["status"], seen.json()["target"]) == (200, "queued", APP)
        b.daemon.tend_requests()  # A's claim is live: B leaves the request alone
        assert b.rt.journal.request(request).replica == a.daemon.replica  # type: ignore[union-attr]
        # A replica whose config had another target accepted one and died too.
        retired = TriggerRequest("r-retired", "retired-deploy", datetime.now(UTC), replica="gone:1")
        b.rt.journal.add_request(retired, datetime.now(UTC), timedelta(minutes=10))
        # A never runs it. Time passes on the database's clock, past both claims:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE requests SET claim_until = clock_timestamp() - interval '1 second'")
        draining = Daemon(b.rt, Metrics(), trigger_enabled=True)  # a third replica, stopping
        draining.draining.set()
        draining.tend_requests()
        assert b.rt.journal.request(request).replica == a.daemon.replica  # type: ignore[union-attr]
        b.daemon.tend_requests()
        run = finished(one, request)  # A's journal answers too
        assert (run["status"], run["outcome"], run["failed"], run["coalesced"]) == (
            "finished",
            "done",
            False,
            False,
        )
        [rotation] = run["rotations"]
        assert rotation["outcome"] == "succeeded"
        assert _creates(fakes) == creates + 1
        assert b.held_works(0)
        cancelled = finished(two, retired.id)
        assert (cancelled["status"], cancelled["rotations"]) == ("cancelled", [])
        assert "no target named 'retired-deploy'" in cancelled["detail"]
        # A coalesced answer for a rotation no request planned (`rotator rotate`) is known by its
        # id on every replica, too.
        report = a.rt.engine.run_target(
            a.daemon.targets[APP], RunOptions(names=(APP,), force=True, trigger="rotate")
        )
        coalesced = two.post(f"/v1/targets/{APP}/rotate").json()
        assert (coalesced["coalesced"], coalesced["id"]) == (True, report.rotations[0])
        assert one.get(f"/v1/rotations/{report.rotations[0]}").json()["rotations"] == coalesced["rotations"]


@pytest.mark.parametrize(
    ("crash_after", "served"),
    [
        # Resumed, and verified: it is the request's one rotation.
        (Step.PUSHED, [(True, "succeeded")]),
        # Rolled back, having minted nothing: the request is not yet carried out; it is, then.
        (Step.PLANNED, [(True, "rolled_back"), (False, "succeeded")]),
    ],
)
def test_a_request_taken_over_after_its_rotation_was_planned_mints_one_token(
    fakes: Fakes, tmp_path: Path, crash_after: Step, served: list[tuple[bool, str]]
) -> None:
    """A crashes right after recording a step; B takes the request over and finishes it with one create."""
    # B's clock runs 11 minutes ahead: past the claim A takes (lease_ttl, 10m), as if that time passed.
    with (
        running_daemon(fakes, tmp_path, clock_offset="11m") as b,
        running_daemon(fakes, tmp_path, scheduled=False) as a,
        a.client() as one,
        b.client() as two,
    ):
        creates = _creates(fakes)
        a.rt.engine.ctx = replace(a.rt.engine.ctx, crash_after=crash_after.value, crash=_crash)
        accepted = one.post(f"/v1/targets/{APP}/rotate")
        assert accepted.status_code == 202, accepted.text
        request = accepted.json()["id"]
        a.daemon.scheduler.start()  # only the queued request: A has no other job, and renews nothing
        try:
            wait_until(lambda: bool(a.rt.journal.request_rotations(request)), what="A's rotation recorded")
            wait_until(lambda: a.daemon.in_flight == 0, what="A's crash")
        finally:
            a.daemon.scheduler.shutdown(wait=False)
        [planned] = a.rt.journal.request_rotations(request)
        assert planned.step is crash_after
        assert a.rt.journal.request(request).status is RequestStatus.RUNNING  # type: ignore[union-attr]
        b.daemon.tend_requests()
        run = finished(two, request)
        assert (run["status"], run["outcome"], run["failed"]) == ("finished", "done", False), run
        assert [(r["id"] == planned.id, r["outcome"]) for r in run["rotations"]] == served
        assert _creates(fakes) == creates + 1
        http = [r.id for r in b.rt.journal.rotations(limit=10) if r.trigger == "http"]
        assert sorted(http) == sorted(r["id"] for r in run["rotations"])
        assert b.held_works(0)


def test_a_request_whose_run_was_skipped_by_a_stop_stays_open_for_another_replica(
    fakes: Fakes, tmp_path: Path
) -> None:
    """Stopping began between the run's admission and its start (the engine skipped it): still queued."""
    with running_daemon(fakes, tmp_path, scheduled=False) as a, a.client() as one:
        creates = _creates(fakes)
        request = one.post(f"/v1/targets/{APP}/rotate").json()["id"]
        a.rt.engine.stopping.set()  # what stop() sets right after draining: the run is admitted, then skipped
        a.daemon.scheduler.start()
        wait_until(lambda: a.daemon.scheduler.get_job(f"trigger:{request}") is None, what="the run's start")
        a.daemon.scheduler.shutdown(wait=True)
        kept = a.rt.journal.request(request)
        assert kept is not None
        assert (kept.status, kept.outcome) == (RequestStatus.QUEUED, None)  # another replica takes it over
        assert _creates(fakes) == creates
