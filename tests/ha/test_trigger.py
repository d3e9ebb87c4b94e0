"""Two replicas racing one trigger make one rotation; a rolling restart during rotations converges."""

import threading

from typing import TYPE_CHECKING

import pytest

from tests.ha.conftest import MakeFleet
from tests.ha.fleet import CREATE


if TYPE_CHECKING:
    import httpx


pytestmark = pytest.mark.exhaustive


def test_two_replicas_racing_the_same_trigger_make_one_forced_rotation(make_fleet: MakeFleet) -> None:
    """POST .../rotate to both replicas at once: exactly one forced rotation, one create."""
    fleet = make_fleet(1, state={"lease_ttl": "60s"})  # no lease need lapse here
    replicas = fleet.start("r0", "r1")
    fleet.wait_all_rotated()  # the scheduled first rotation
    fleet.host.set_latency("gitlab", CREATE, 1.0)
    barrier = threading.Barrier(len(replicas))
    answers: dict[str, httpx.Response] = {}

    def post(name: str) -> None:
        barrier.wait()
        answers[name] = fleet.replicas[name].trigger("p0-deploy")

    threads = [threading.Thread(target=post, args=(r.name,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    print({name: (a.status_code, a.json()) for name, a in answers.items()})  # noqa: T201 - how it was answered
    assert {a.status_code for a in answers.values()} <= {202, 409}
    for name, answer in answers.items():
        if answer.status_code == 202 and not answer.json()["coalesced"]:
            fleet.replicas[name].triggered(answer.json()["id"])
    forced = [r for r in fleet.rotations() if r.trigger == "http"]
    assert [r.outcome.value for r in forced] == ["succeeded"]
    assert fleet.creates() == {fleet.targets[0]["project"]: 2}  # the scheduled one and the forced one
    assert fleet.stop_all() == {"r0": 0, "r1": 0}
    fleet.check()
    assert fleet.settled()


def test_a_rolling_restart_during_rotations_rotates_each_target_once(make_fleet: MakeFleet) -> None:
    """Each replica in turn SIGTERMed (it drains) and started again while targets rotate: once each."""
    fleet = make_fleet(12, max_concurrent_rotations=2, state={"lease_ttl": "60s"})
    fleet.host.set_latency("gitlab", "*", 0.4)
    fleet.host.set_latency("infisical", "*", 0.4)
    fleet.start("r0", "r1", "r2")
    codes = []
    for name in ("r0", "r1", "r2"):
        stopping = fleet.replicas[name]
        codes.append(fleet.stop(name))
        fleet.start(name)
        assert stopping.wait_for(lambda e: e.get("event") == "daemon.stopping", 1)
    assert codes == [0, 0, 0]
    in_flight = [
        e["in_flight"] for r in fleet.gone for e in r.events() if e.get("event") == "daemon.stopping"
    ]
    assert any(in_flight), in_flight  # at least one replica was stopped with rotations running
    fleet.wait_all_rotated()
    assert fleet.stop_all() == {"r0": 0, "r1": 0, "r2": 0}
    assert fleet.succeeded() == dict.fromkeys(fleet.names, 1)
    assert fleet.creates() == {t["project"]: 1 for t in fleet.targets}
    assert all(len(callers) == 1 for callers in fleet.actors().values()), fleet.actors()
    print(f"rotations per replica process: {fleet.spread()}")  # noqa: T201
    fleet.check()
    assert fleet.settled()
