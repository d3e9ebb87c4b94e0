"""Alerts reach every observer and never raise, even when the journal is what failed."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from prometheus_client import generate_latest

from rotator.adapters.metrics import Metrics, TargetGauges
from rotator.adapters.webhook import payload
from rotator.core.model import Change
from rotator.core.ports import Alert
from rotator.doors import wiring
from rotator.doors.config import engine_spec, parse_config
from rotator.engine.context import Context
from rotator.engine.run import Engine, RunOptions
from rotator.journal.sqlite import SQLiteJournal
from rotator.testing import start_fakes
from tests.cli_harness import CONNECTIONS, Harness
from tests.observers import Heard as Listener


CONFIG = {
    "gitlab": {"url": "https://gitlab.example.com"},
    "targets": [
        {
            "name": "app-deploy",
            "project": 42,
            "connection_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "token": {"scopes": ["api"]},
        }
    ],
}


class Heard:
    """An observer that remembers what it was told."""

    def __init__(self) -> None:
        """Nothing heard yet."""
        self.alerts: list[Alert] = []
        self.finished: list[tuple[str, str]] = []

    def rotation_finished(self, target: str, outcome: str, seconds: float) -> None:
        """Remember a finished rotation."""
        assert seconds >= 0
        self.finished.append((target, outcome))

    def alert(self, alert: Alert) -> None:
        """Remember an alert."""
        self.alerts.append(alert)

    def recorded(self, target: str, change: Change) -> None:
        """Nothing is recorded when the journal cannot be written."""
        raise AssertionError((target, change))


def test_a_broken_journal_fails_the_target_with_an_alert_not_an_exception(tmp_path: Path) -> None:
    """The journal raising on every read: the target is reported failed and observers hear of it."""
    journal = SQLiteJournal(tmp_path / "state.db")
    journal.close()  # every later read raises sqlite3.ProgrammingError
    heard = Heard()
    unused = cast("Any", None)  # no upstream call happens before the journal is read
    ctx = Context(
        unused,
        unused,
        journal,
        lambda: datetime.now(UTC),
        lambda _s: None,
        lambda: 0.0,
        "x",
        "t",
        observer=heard,
    )
    engine = Engine(engine_spec(parse_config(CONFIG)), ctx)
    [report] = engine.run(RunOptions())
    assert (report.status, report.failed) == ("failed", True)
    assert "unexpected ProgrammingError" in report.detail
    [alert] = heard.alerts
    assert (alert.target, alert.reason, alert.expires_at) == ("app-deploy", "failed", None)


def test_a_scrape_survives_a_journal_that_cannot_be_read() -> None:
    """The gauges' journal read failing leaves /metrics with its counters, not a 500."""
    metrics = Metrics()
    metrics.on_response("gitlab", "GET /projects/:id", "200")

    def broken() -> list[TargetGauges]:
        raise OSError

    metrics.watch_targets(broken)
    text = generate_latest(metrics.registry).decode()
    assert (
        'rotator_upstream_requests_total{route="GET /projects/:id",status="200",upstream="gitlab"} 1.0'
        in text
    )
    assert "rotator_token_expiry_timestamp_seconds{" not in text


def test_expiring_is_not_counted_as_a_failure() -> None:
    """An ``expiring`` alert is a state (shown by the gauges), so the failures counter does not move."""
    metrics = Metrics()
    now = datetime.now(UTC)
    metrics.alert(Alert("app-deploy", "expiring", "not rotated", now))
    metrics.alert(Alert("app-deploy", "failed", "boom", now, step="push"))
    text = generate_latest(metrics.registry).decode()
    assert 'rotator_rotation_failures_total{reason="failed",step="push",target="app-deploy"} 1.0' in text
    assert 'reason="expiring"' not in text


class Broken:
    """An observer whose every hook raises, like a narration writing to a closed pipe."""

    def rotation_finished(self, target: str, outcome: str, seconds: float) -> None:
        """Raise."""
        raise BrokenPipeError((target, outcome, seconds))

    def alert(self, alert: Alert) -> None:
        """Raise."""
        raise BrokenPipeError(alert)

    def recorded(self, target: str, change: Change) -> None:
        """Raise."""
        raise BrokenPipeError((target, change))


def test_an_observer_that_raises_never_stops_a_rotation(tmp_path: Path) -> None:
    """Every hook raising: both targets still rotate, and Infisical holds tokens GitLab accepts."""
    with start_fakes() as fakes:
        Harness(fakes, tmp_path, grace="0s")
        environ = fakes.seed.environment()
        config = wiring.load(str(tmp_path / "rotator.yaml"), environ)
        rt = wiring.build(config, environ, observers=(Broken(),))
        try:
            reports = rt.engine.run(RunOptions())
        finally:
            rt.close()
        assert [(r.status, r.failed) for r in reports] == [("done", False), ("done", False)]
        for connection in CONNECTIONS:
            assert fakes.gitlab.test_only_accepts(fakes.infisical.test_only_held_token(connection))


@pytest.mark.parametrize(
    ("upstream", "route", "step"),
    [
        ("gitlab", "POST /api/v4/projects/:id/access_tokens", "create"),
        ("infisical", "PATCH /api/v1/app-connections/gitlab/:connectionId", "push"),
    ],
)
def test_an_alert_names_the_step_its_error_line_names(
    tmp_path: Path, upstream: str, route: str, step: str
) -> None:
    """A refused create or push: the alert, the webhook body and the error line say the same step."""
    with start_fakes() as fakes:
        Harness(fakes, tmp_path)
        environ = fakes.seed.environment()
        config = wiring.load(str(tmp_path / "rotator.yaml"), environ)
        heard = Listener()
        rt = wiring.build(config, environ, observers=(heard,))
        try:
            (fakes.gitlab if upstream == "gitlab" else fakes.infisical).faults.fail(route, 400)
            reports = rt.engine.run(RunOptions(names=("app-deploy",)))
        finally:
            rt.close()
    [report] = reports
    assert report.failed
    assert f"step={step} " in report.detail
    [alert] = [a for a in heard.alerts if a.reason == "failed"]
    assert alert.step == step
    body = payload(alert)
    assert body["step"] == step
    assert str(body["text"]).startswith(f"rotator: app-deploy: failed at step {step}: {upstream} ")
