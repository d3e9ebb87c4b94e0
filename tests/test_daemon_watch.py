"""``rotator daemon`` watches every token in its scopes: expiry gauges and one digest, over HTTP."""

import re

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotator.testing import Fakes
from tests.cli_harness import Harness
from tests.test_daemon import DaemonProcess, daemon_config, finished_for, metric
from tests.test_notify import Receiver, receiver


__all__ = ["receiver"]  # the fixture, imported for this module's tests
pytestmark = pytest.mark.slow
WATCHED = "rotator_watched_token_expiry_timestamp_seconds"


def _digests(receiver: Receiver) -> list[dict[str, Any]]:
    """The ``unmanaged_expiring`` alerts posted, once at least one came (10 s at most)."""

    def posted() -> list[dict[str, Any]]:
        return [r.body for r in receiver.requests if r.body.get("reason") == "unmanaged_expiring"]

    with receiver.seen:
        receiver.seen.wait_for(posted, 10)
        return posted()


@pytest.fixture
def daemon(fakes: Fakes, tmp_path: Path, receiver: Receiver) -> Iterator[tuple[DaemonProcess, int]]:
    """A daemon over both example targets, with a hand-made token expiring in 5 days in acme/app."""
    harness = Harness(fakes, tmp_path, grace="0s")
    project = fakes.gitlab.state.find_resource("project", "acme/app")
    assert project is not None
    soon = fakes.gitlab.seed_resource_token(project, "hand-made", ["read_api"], days=5)
    daemon_config(harness, tmp_path)
    d = DaemonProcess(harness, env={"ROTATOR_WEBHOOK_URL": receiver.url})
    yield d, soon.id
    d.stop()


def test_the_daemon_exports_watched_expiries_and_sends_one_digest(
    daemon: tuple[DaemonProcess, int], receiver: Receiver
) -> None:
    """At start the watch lists the targets' scopes: the hand-made token is unmanaged, gauged, digested."""
    d, soon = daemon
    d.wait_for(finished_for("app-deploy"), 30)
    taken = d.wait_for(lambda e: e.get("event") == "inventory.taken", 30)
    assert taken["level"] == "info"
    scrape = d.client.get("/metrics").text
    assert metric(scrape, WATCHED, scope="project:acme/app", token_id=str(soon), owner="unmanaged") > 0
    assert metric(scrape, "rotator_unmanaged_tokens", scope="project:acme/app") >= 1
    digests = _digests(receiver)
    assert len(digests) == 1, digests
    assert digests[0]["target"] == "project:acme/app"
    assert "hand-made" in digests[0]["message"]
    assert not re.search(r"glpat-", d.output() + str(digests))
