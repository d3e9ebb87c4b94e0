"""Issue 15 item 8: a project path that does not resolve is recorded, shown failing, alerted and cleared."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from prometheus_client import generate_latest

from rotator.adapters.metrics import Metrics
from rotator.adapters.webhook import payload
from rotator.doors import report, wiring
from rotator.doors.daemon import Daemon
from rotator.engine.run import RunOptions, TargetReport
from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, Harness
from tests.observers import Heard
from tests.test_daemon import metric
from tests.test_web import running_daemon, samples


MANAGER = "rotator-manager"
MAINTAINER = 40
WRONG_TOKEN = "glpat-" + "x" * 20


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """Both example targets against the fakes, by project path."""
    return Harness(fakes, tmp_path)


def _set_access(fakes: Fakes, *, lost: bool) -> None:
    """Remove the manager from ``acme/app`` (GitLab then answers 404 for the path), or restore it."""
    fakes.gitlab.set_project_role(fakes.seed.project_ids[0], MANAGER, None if lost else MAINTAINER)


class InProcess:
    """The engine, the daemon's gauges and an alert listener, built as ``rotator daemon`` builds them."""

    def __init__(self, rt: wiring.Runtime, metrics: Metrics, heard: Heard) -> None:
        """Hold the parts."""
        self.rt, self.metrics, self.heard = rt, metrics, heard
        # Not started: only its gauges are read, from the same journal the engine writes.
        self.daemon = Daemon(rt, metrics, trigger_enabled=False)

    def run(self, *, dry_run: bool = False) -> dict[str, TargetReport]:
        """One run over every target, by target name."""
        return {r.name: r for r in self.rt.engine.run(RunOptions(dry_run=dry_run))}

    def scrape(self) -> str:
        """What /metrics would answer."""
        return generate_latest(self.metrics.registry).decode()

    def status(self) -> dict[str, dict[str, Any]]:
        """``status --json``'s rows, by target name."""
        data = report.status(self.rt.config, self.rt.journal, self.rt.engine.ctx.clock)
        return {row["target"]: row for row in data["targets"]}


@contextmanager
def in_process(h: Harness, environ: dict[str, str] | None = None) -> Iterator[InProcess]:
    """The harness's config built in process, with ``environ`` over the fakes' credentials."""
    env = {**h.fakes.seed.environment(), **(environ or {})}
    config = wiring.load(str(h.folder / "rotator.yaml"), env)
    metrics, heard = Metrics(), Heard()
    rt = wiring.build(config, env, observers=(metrics, heard), on_response=metrics.on_response)
    try:
        yield InProcess(rt, metrics, heard)
    finally:
        rt.close()


def _changes_for_app(fakes: Fakes) -> list[str]:
    """Every request but a read that concerned ``acme/app`` or its connection."""
    project = fakes.seed.project_ids[0]
    gitlab = [
        c.route
        for c in fakes.gitlab.calls()
        if (f"/projects/{project}/" in c.path or "acme%2Fapp" in c.path) and not c.route.startswith("GET")
    ]
    infisical = [
        c.route for c in fakes.infisical.calls() if CONNECTIONS[0] in c.path and not c.route.startswith("GET")
    ]
    return gitlab + infisical


@pytest.mark.slow
def test_cli_a_project_gitlab_will_not_resolve_fails_run_once_and_status_until_it_does(h: Harness) -> None:
    """404 for the path: run-once and status exit 1 naming step and status; the other target rotates."""
    _set_access(h.fakes, lost=True)
    seeded = h.fakes.infisical.test_only_held_token(CONNECTIONS[0])
    run = h.run("run-once")
    assert run.code == 1, run.stdout + run.stderr
    assert "app-deploy: failed: " in run.stdout
    assert "step=resolve" in run.stdout
    assert "-> 404" in run.stdout
    assert "api-deploy: done: rotated" in run.stdout
    assert "Traceback" not in run.stderr
    assert _changes_for_app(h.fakes) == []
    assert h.active_tokens(0) == [h.fakes.seed.adopt_token_ids[0]]
    assert h.fakes.infisical.test_only_held_token(CONNECTIONS[0]) == seeded

    table = h.run("status")
    assert table.code == 1, table.stdout + table.stderr
    assert "app-deploy: failing: cannot resolve project acme/app" in table.stdout
    assert "step=resolve gitlab GET /projects/:id -> 404" in table.stdout
    row = h.run("status", "--json")
    assert row.code == 1
    app = row.json()["targets"][0]
    assert (app["target"], app["failing"]) == ("app-deploy", True)
    assert "-> 404" in app["last_error"]
    assert "cannot resolve project acme/app" in app["failing_reason"]
    assert app["unresolved_project"]["status"] == 404

    _set_access(h.fakes, lost=False)
    again = h.run("run-once")
    assert again.code == 0, again.stdout + again.stderr
    clean = h.run("status", "--json")
    assert clean.code == 0, clean.stdout
    app = clean.json()["targets"][0]
    assert (app["failing"], app["unresolved_project"], app["last_outcome"]) == (False, None, "succeeded")


def test_a_wrong_manager_token_is_recorded_gauged_alerted_and_cleared_by_the_next_good_run(
    h: Harness,
) -> None:
    """401 resolving: rotator_failing 1, a ``failed`` alert at step "resolve"; then all clean."""
    with in_process(h, {"ROTATOR_GITLAB_TOKEN": WRONG_TOKEN}) as bad:
        reports = bad.run()
        for name in ("app-deploy", "api-deploy"):
            assert (reports[name].status, reports[name].failed) == ("failed", True)
            assert "step=resolve" in reports[name].detail
            assert "-> 401" in reports[name].detail
        scrape = bad.scrape()
        assert metric(scrape, "rotator_failing", target="app-deploy") == 1
        assert metric(scrape, "rotator_failing", target="api-deploy") == 1
        failures = metric(
            scrape,
            "rotator_rotation_failures_total",
            target="app-deploy",
            step="resolve",
            reason="failed",
        )
        assert failures == 1
        alert = next(a for a in bad.heard.alerts if a.target == "app-deploy")
        body = payload(alert)
        assert (body["reason"], body["step"]) == ("failed", "resolve")
        assert "401" in str(body["text"])
        status = bad.status()["app-deploy"]
        assert status["failing"] is True
        first = status["unresolved_project"]
        assert first == {
            "project": "acme/app",
            "since": first["since"],
            "last_failed": first["since"],
            "failures": 1,
            "status": 401,
            "error": reports["app-deploy"].detail,
        }
        bad.run()  # a second failure counts, and keeps the first one's time
        again = bad.status()["app-deploy"]["unresolved_project"]
        assert (again["failures"], again["since"]) == (2, first["since"])
        assert bad.rt.journal.targets() == []  # nothing recorded under a made-up key

    with in_process(h) as good:
        assert [r.failed for r in good.run().values()] == [False, False]
        assert metric(good.scrape(), "rotator_failing", target="app-deploy") == 0
        assert not any(row["failing"] or row["unresolved_project"] for row in good.status().values())


def test_plan_shows_the_recorded_failure_and_sends_nothing(h: Harness) -> None:
    """A dry run after a 404 reports the target failing, with the reason, and sends no request."""
    _set_access(h.fakes, lost=True)
    with in_process(h) as rotator:
        rotator.run()
        h.fakes.gitlab.reset_calls()
        planned = rotator.run(dry_run=True)["app-deploy"]
    assert (planned.status, planned.failed) == ("planned", True)
    assert "cannot resolve project acme/app" in planned.detail
    assert h.fakes.gitlab.calls() == []


def test_the_daemon_serves_the_failure_on_metrics_and_v1_targets(fakes: Fakes, tmp_path: Path) -> None:
    """Over HTTP: rotator_failing 1, /v1/targets/NAME failing with the 404; both clear once it resolves."""
    _set_access(fakes, lost=True)
    with running_daemon(fakes, tmp_path, scheduled=False) as running, running.client() as client:
        running.rt.engine.run(RunOptions())
        assert samples(client.get("/metrics").text, "rotator_failing") == [
            ({"target": "app-deploy"}, 1.0),
            ({"target": "api-deploy"}, 0.0),
        ]
        answer = client.get("/v1/targets/app-deploy")
        assert answer.status_code == 200, answer.text
        row = answer.json()
        assert (row["failing"], row["unresolved_project"]["status"]) == (True, 404)
        assert "step=resolve" in row["last_error"]
        _set_access(fakes, lost=False)
        running.rt.engine.run(RunOptions())
        assert samples(client.get("/metrics").text, "rotator_failing") == [
            ({"target": "app-deploy"}, 0.0),
            ({"target": "api-deploy"}, 0.0),
        ]
        assert client.get("/v1/targets/app-deploy").json()["unresolved_project"] is None
