"""A group, a service-account and a project target rotate side by side in ``rotator daemon``, over HTTP."""

import re

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator.testing import Fakes
from tests.cli_harness import Harness
from tests.kinds import CONNECTION_OF, KINDS, NAMES, seed_kinds
from tests.test_daemon import AUTH, DaemonProcess, daemon_config, finished_for, poll


pytestmark = pytest.mark.slow
#: The ``accessTokenType`` each kind's connection keeps through every rotation.
TYPES = {"project": "project", "group": "group", "service_account": "personal"}


def revoked_for(name: str) -> Callable[[dict[str, Any]], bool]:
    """A test for ``token.revoked`` events of target ``name``."""
    return lambda event: event.get("event") == "token.revoked" and event["target"] == name


def test_the_daemon_rotates_three_kinds_and_the_trigger_rotates_each(fakes: Fakes, tmp_path: Path) -> None:
    """The scheduler rotates all three, revokes each adopted token; the HTTP trigger rotates each again."""
    seeded = seed_kinds(fakes)
    harness = Harness(fakes, tmp_path, grace="0s")
    config = yaml.safe_load((tmp_path / "rotator.yaml").read_text())
    config["targets"] = seeded.targets()
    (tmp_path / "rotator.yaml").write_text(yaml.safe_dump(config))
    daemon_config(harness, tmp_path, min_trigger_interval="0s")
    d = DaemonProcess(harness)
    # 1. The first check rotates every never-rotated target; with no grace each old token goes at once.
    for kind in KINDS:
        finished = d.wait_for(finished_for(NAMES[kind]), 30)
        assert finished["outcome"] == "succeeded", finished
    for kind in KINDS:
        revoked = d.wait_for(revoked_for(NAMES[kind]), 30)
        assert revoked["token_id"] == seeded.held[kind]
    rotated = {kind: seeded.active(kind) for kind in KINDS}
    assert all(len(ids) == 1 and seeded.works(kind) for kind, ids in rotated.items()), rotated
    # The service account's new token belongs to the same user: no bot user was made for it.
    assert fakes.gitlab.test_only_token(rotated["service_account"][0]).user_id == seeded.account.id
    # 2. The trigger, once per kind: a new token each, pushed with the type the connection has.
    for kind in KINDS:
        accepted = d.client.post(f"/v1/targets/{NAMES[kind]}/rotate", headers=AUTH)
        assert accepted.status_code == 202, accepted.text
        done = poll(d.client, accepted.json()["id"])
        assert (done["outcome"], done["failed"]) == ("done", False), done
        assert [r["outcome"] for r in done["rotations"]] == ["succeeded"]
        assert seeded.works(kind)
        assert seeded.active(kind) != rotated[kind]
        held = fakes.infisical.test_only_credentials(CONNECTION_OF[kind])
        assert held["accessTokenType"] == TYPES[kind]
    assert d.stop() == 0
    assert not re.search(r"glpat-|Bearer ", d.output())
    events = [e for e in d.events() if e.get("event") == "rotation.finished"]
    assert sorted(e["target"] for e in events if e["trigger"] == "http") == sorted(
        NAMES[kind] for kind in KINDS
    )
