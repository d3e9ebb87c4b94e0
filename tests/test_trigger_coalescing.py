"""``daemon.min_trigger_interval``: a flood of HTTP triggers mints one token, fleet-wide, after restarts."""

import io
import json

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from rotator.engine.run import RunOptions
from rotator.testing import Fakes
from tests.test_web import API, APP, PATCH, Running, finished, running_daemon, samples, trigger


CREATE = "POST /api/v4/projects/:id/access_tokens"


def minted(running: Running) -> int:
    """How many tokens the fake GitLab has minted so far (seeded ones included)."""
    return len(running.fakes.gitlab.test_only_minted_values())


def journal_rotation(client: httpx.Client, run_id: str) -> dict[str, object]:
    """The one journal rotation a finished triggered run performed."""
    run = finished(client, run_id)
    assert run["status"] == "finished", run
    assert len(run["rotations"]) == 1, run
    rotation: dict[str, object] = run["rotations"][0]
    return rotation


def events(stream: io.StringIO, name: str) -> list[dict[str, Any]]:
    """The captured events called ``name``."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [e for e in lines if e.get("event") == name]


def coalesced_total(running: Running) -> float:
    """``rotator_triggers_coalesced_total{target=APP}`` as the daemon's /metrics shows it."""
    with running.client(token=None) as http:
        scrape = http.get("/metrics").text
    values = [
        v for labels, v in samples(scrape, "rotator_triggers_coalesced_total") if labels["target"] == APP
    ]
    assert len(values) == 1, scrape
    return values[0]


def test_twenty_sequential_triggers_mint_one_token(fakes: Fakes, tmp_path: Path) -> None:
    """20 POSTs in a row (default 1m interval) mint one token; each answer is 202 with one id, or 409."""
    with running_daemon(fakes, tmp_path) as running, running.client() as client:
        before = minted(running)
        answers = [client.post(f"/v1/targets/{APP}/rotate") for _ in range(20)]
        accepted = [a for a in answers if a.status_code == 202]
        for answer in accepted:  # every run any of them started has finished
            finished(client, answer.json()["id"])
        after = client.post(f"/v1/targets/{APP}/rotate")  # certainly after the rotation finished
        assert minted(running) == before + 1
        run_id = answers[0].json()["id"]
        assert {a.json()["id"] for a in [*accepted, after]} == {run_id}
        assert [a.json()["reason"] for a in answers if a.status_code != 202] == ["rotating"] * (
            20 - len(accepted)
        )
        assert answers[0].json()["coalesced"] is False
        for answer in [*accepted[1:], after]:
            assert answer.headers["location"] == f"/v1/rotations/{run_id}"
            assert (answer.json()["coalesced"], answer.json()["status"]) == (True, "finished")
        # Measured from the rotation's end as the journal records it: inside the run's own times.
        run = finished(client, run_id)
        next_trigger = datetime.fromisoformat(after.json()["next_trigger_at"]) - timedelta(minutes=1)
        assert (
            datetime.fromisoformat(run["started_at"])
            <= next_trigger
            <= datetime.fromisoformat(run["finished_at"])
        )
        assert coalesced_total(running) == len(accepted)  # all but the first, plus `after`
        assert running.held_works(0)


def test_a_replica_sharing_the_journal_answers_409_then_coalesces(fakes: Fakes, tmp_path: Path) -> None:
    """A second daemon on the same journal: 409 while the first's forced rotation runs, then that rotation."""
    with (
        running_daemon(fakes, tmp_path) as first,
        running_daemon(fakes, tmp_path) as second,
        first.client() as one,
        second.client() as two,
    ):
        before = minted(first)
        slow = fakes.infisical.faults.delay(PATCH, 2)
        accepted = trigger(one, APP)
        assert accepted.status_code == 202, accepted.text
        assert slow.reached.wait(10)
        busy = two.post(f"/v1/targets/{APP}/rotate")
        assert (busy.status_code, busy.json()["reason"]) == (409, "rotating")
        rotation = journal_rotation(one, accepted.json()["id"])
        answer = trigger(two, APP)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["coalesced"] is True
        # The journal names the request that planned the rotation: the other replica's, read here.
        assert body["id"] == accepted.json()["id"]
        assert body["rotations"] == [rotation]
        assert (body["outcome"], body["failed"]) == ("done", False)
        assert two.get(f"/v1/rotations/{body['id']}").json()["rotations"] == [rotation]
        assert minted(first) == before + 1


def test_after_the_interval_a_restarted_daemon_rotates_again(fakes: Fakes, tmp_path: Path) -> None:
    """A restart within the interval still coalesces; with the clock past it, a trigger mints a new token."""
    with running_daemon(fakes, tmp_path) as running, running.client() as client:
        request = trigger(client, APP).json()["id"]
        rotation = journal_rotation(client, request)
        before = minted(running)
    with running_daemon(fakes, tmp_path) as restarted, restarted.client() as client:
        answer = trigger(client, APP)
        assert answer.status_code == 202, answer.text
        assert (answer.json()["coalesced"], answer.json()["id"]) == (True, request)
    fakes.clock.advance(timedelta(minutes=2))
    with running_daemon(fakes, tmp_path, clock_offset="2m") as later, later.client() as client:
        answer = trigger(client, APP)
        assert answer.status_code == 202, answer.text
        assert answer.json()["coalesced"] is False
        again = journal_rotation(client, answer.json()["id"])
        assert again["id"] != rotation["id"]
        assert again["outcome"] == "succeeded"
        assert minted(later) == before + 1
        assert later.held_works(0)


def test_a_failed_forced_rotation_is_coalesced_too(fakes: Fakes, tmp_path: Path) -> None:
    """A rotation that failed after its create still minted a token: a trigger within the interval gets it."""
    with running_daemon(fakes, tmp_path) as running, running.client() as client:
        fakes.infisical.faults.fail(PATCH, 400, times=None)
        failed = finished(client, trigger(client, APP).json()["id"])
        assert (failed["outcome"], failed["failed"]) == ("failed", True)
        creates = fakes.gitlab.call_counts(user_agent="rotator/")[CREATE]
        answer = trigger(client, APP)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert (body["id"], body["coalesced"], body["failed"]) == (failed["id"], True, True)
        assert fakes.gitlab.call_counts(user_agent="rotator/")[CREATE] == creates


def test_zero_interval_keeps_every_trigger_a_rotation(fakes: Fakes, tmp_path: Path) -> None:
    """``min_trigger_interval: 0s``: a trigger right after a finished one rotates again, as before."""
    with running_daemon(fakes, tmp_path, min_trigger_interval="0s") as running, running.client() as client:
        before = minted(running)
        first = journal_rotation(client, trigger(client, APP).json()["id"])
        answer = trigger(client, APP)
        assert answer.status_code == 202, answer.text
        assert answer.json()["coalesced"] is False
        second = journal_rotation(client, answer.json()["id"])
        assert second["id"] != first["id"]
        assert minted(running) == before + 2
        assert coalesced_total(running) == 0


def test_a_queued_trigger_coalesces_onto_a_forced_rotation_a_replica_ran_meanwhile(
    fakes: Fakes, tmp_path: Path
) -> None:
    """A trigger waiting for a worker starts nothing if another replica forced a rotation meanwhile."""
    with (
        running_daemon(fakes, tmp_path) as first,
        running_daemon(fakes, tmp_path, workers=1) as second,
        first.client() as one,
        second.client() as two,
    ):
        before = minted(first)
        slow = fakes.infisical.faults.delay(PATCH, 1)
        filler = trigger(two, API)  # takes the second replica's only worker for a second
        assert filler.status_code == 202, filler.text
        assert slow.reached.wait(10)
        queued = trigger(two, APP)
        assert (queued.status_code, queued.json()["status"]) == (202, "queued"), queued.text
        rotation = journal_rotation(one, trigger(one, APP).json()["id"])  # done before the worker frees
        run = finished(two, queued.json()["id"])
        assert (run["coalesced"], run["rotations"]) == (True, [rotation])
        assert (run["outcome"], run["failed"]) == ("done", False)
        assert datetime.fromisoformat(run["next_trigger_at"]) <= datetime.now(UTC) + timedelta(minutes=1)
        assert finished(two, filler.json()["id"])["outcome"] == "done"
        assert minted(first) == before + 2  # api-deploy's, and app-deploy's once
        forced = [r for r in first.rt.journal.rotations(limit=10) if r.trigger == "http" and r.target == APP]
        assert [r.id for r in forced] == [rotation["id"]]


def test_rotator_rotate_is_never_coalesced(fakes: Fakes, tmp_path: Path) -> None:
    """Right after a forced HTTP rotation, `rotator rotate`'s run (no triggered_at) still rotates."""
    with running_daemon(fakes, tmp_path) as running, running.client() as client:
        rotation = journal_rotation(client, trigger(client, APP).json()["id"])
        target = running.daemon.targets[APP]
        report = running.rt.engine.run_target(target, RunOptions(names=(APP,), force=True, trigger="rotate"))
        assert (report.status, report.coalesced_onto) == ("done", None), report
        assert len(report.rotations) == 1
        assert report.rotations[0] != rotation["id"]


def test_a_forced_rotation_stamped_by_a_fast_clock_does_not_block_triggers(
    fakes: Fakes, tmp_path: Path, logs: io.StringIO
) -> None:
    """A forced rotation recorded a day ahead (a fast clock) is not recent: a trigger rotates, and warns."""
    with running_daemon(fakes, tmp_path, clock_offset="1d") as fast, fast.client() as client:
        ahead = journal_rotation(client, trigger(client, APP).json()["id"])
    with running_daemon(fakes, tmp_path) as running, running.client() as client:
        before = minted(running)
        answer = trigger(client, APP)
        assert answer.status_code == 202, answer.text
        assert (answer.json()["coalesced"], answer.json()["next_trigger_at"]) == (False, None)
        again = journal_rotation(client, answer.json()["id"])
        assert again["id"] != ahead["id"]
        assert again["outcome"] == "succeeded"
        assert minted(running) == before + 1
        assert running.held_works(0)
    warnings = events(logs, "trigger.clock_skew")
    assert warnings, "no warning about the fast clock"
    assert {(w["target"], w["rotation"]) for w in warnings} == {(APP, ahead["id"])}
    assert all(23 * 3600 < w["skew_s"] <= 24 * 3600 for w in warnings)


def test_an_in_flight_rotation_stamped_by_a_fast_clock_is_not_a_409(fakes: Fakes, tmp_path: Path) -> None:
    """A forced rotation in flight on a replica a day ahead does not answer 409 `rotating` for a day."""
    with (
        running_daemon(fakes, tmp_path, clock_offset="1d") as fast,
        running_daemon(fakes, tmp_path) as running,
        fast.client() as ahead,
        running.client() as client,
    ):
        slow = fakes.infisical.faults.delay(PATCH, 1)
        accepted = trigger(ahead, APP)
        assert accepted.status_code == 202, accepted.text
        assert slow.reached.wait(10)
        answer = client.post(f"/v1/targets/{APP}/rotate")
        assert answer.status_code == 202, answer.text
        assert answer.json()["coalesced"] is False
        finished(client, answer.json()["id"])
        finished(ahead, accepted.json()["id"])


def test_next_trigger_at_is_at_most_one_interval_away(fakes: Fakes, tmp_path: Path) -> None:
    """A rotation stamped 30 s ahead (inside the skew margin) coalesces, but for no more than the interval."""
    with running_daemon(fakes, tmp_path, clock_offset="30s") as fast, fast.client() as client:
        request = trigger(client, APP).json()["id"]
        ahead = journal_rotation(client, request)
    with running_daemon(fakes, tmp_path) as running, running.client() as client:
        answer = trigger(client, APP)
        latest = datetime.now(UTC) + timedelta(minutes=1)
        assert answer.status_code == 202, answer.text
        assert (answer.json()["coalesced"], answer.json()["rotations"]) == (True, [ahead])
        assert answer.json()["id"] == request
        assert datetime.fromisoformat(answer.json()["next_trigger_at"]) <= latest


def test_a_coalesced_answer_never_reuses_a_run_that_came_back_busy(fakes: Fakes, tmp_path: Path) -> None:
    """A trigger found busy waits and coalesces; a later coalesced 202 names the request that rotated."""
    # The second replica's clock lags (within the skew margin), as a real one may.
    with (
        running_daemon(fakes, tmp_path) as first,
        running_daemon(fakes, tmp_path, workers=1, clock_offset="-30s") as second,
        first.client() as one,
        second.client() as two,
    ):
        filling = fakes.infisical.faults.delay(PATCH, 1)
        filler = trigger(two, API)  # the second replica's only worker, for a second
        assert filler.status_code == 202, filler.text
        assert filling.reached.wait(10)
        queued = trigger(two, APP)
        assert queued.status_code == 202, queued.text
        holding = fakes.infisical.faults.delay(PATCH, 2)
        accepted = trigger(one, APP)
        assert accepted.status_code == 202, accepted.text
        assert holding.reached.wait(10)  # the first replica holds app-deploy past the worker's release
        rotation = journal_rotation(one, accepted.json()["id"])
        # Found busy, it went back in the queue, and then coalesced onto the rotation that held it.
        waited = finished(two, queued.json()["id"])
        assert (waited["coalesced"], waited["rotations"]) == (True, [rotation]), waited
        answer = trigger(two, APP)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert (body["coalesced"], body["id"], body["outcome"], body["failed"]) == (
            True,
            accepted.json()["id"],
            "done",
            False,
        )
        assert body["rotations"] == [rotation]
        finished(two, filler.json()["id"])
