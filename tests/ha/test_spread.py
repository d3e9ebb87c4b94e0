"""Three daemons over thirty due targets: each rotated exactly once, the work spread over all three."""

import pytest

from tests.ha.conftest import MakeFleet
from tests.ha.fleet import CREATE, PATCH


pytestmark = pytest.mark.slow


def test_three_replicas_rotate_thirty_targets_once_each_and_share_the_work(make_fleet: MakeFleet) -> None:
    """3 replicas, 30 due targets: one create and one push per target, every replica rotates some."""
    fleet = make_fleet(30, state={"lease_ttl": "60s"})  # no lease need lapse here
    # 50 ms per call: a rotation takes about half a second, so no replica can finish the lot
    # before the others have started, as on a real network.
    fleet.host.set_latency("gitlab", "*", 0.05)
    fleet.host.set_latency("infisical", "*", 0.05)
    fleet.start("r0", "r1", "r2")
    fleet.wait_all_rotated()
    spread = fleet.spread()
    print(f"rotations per replica: {dict(sorted(spread.items()))}")  # noqa: T201 - the figure asked for
    assert fleet.stop_all() == {"r0": 0, "r1": 0, "r2": 0}
    assert fleet.succeeded() == dict.fromkeys(fleet.names, 1)
    assert fleet.creates() == {t["project"]: 1 for t in fleet.targets}
    patches = [c for c in fleet.calls() if c["route"] == PATCH and c["status"] == 200]
    assert len(patches) == len(fleet.targets)
    assert sorted(spread) == ["r0", "r1", "r2"], spread
    assert sum(spread.values()) == len(fleet.targets)
    # Each target was acted on by one replica only: its lease holder.
    assert all(len(callers) == 1 for callers in fleet.actors().values()), fleet.actors()
    assert all(c["status"] == 201 for c in fleet.calls() if c["route"] == CREATE)
    fleet.check()
    assert fleet.settled()
