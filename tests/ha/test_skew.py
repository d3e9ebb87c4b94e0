"""One replica's clock an hour ahead: leases (on the database's clock) stay exclusive; no double rotation."""

from datetime import timedelta

import pytest

from tests.ha.conftest import MakeFleet
from tests.ha.fleet import PATCH


pytestmark = pytest.mark.exhaustive


def test_a_replica_an_hour_ahead_never_takes_a_live_lease(make_fleet: MakeFleet) -> None:
    """PATCHes outlast the 5 s lease (held by renewal): one replica per target, one rotation each."""
    fleet = make_fleet(9)
    fleet.host.set_latency("infisical", PATCH, 6.0)
    replicas = fleet.start("r0", "r1", wait=False) + fleet.start("r2", skew=timedelta(hours=1), wait=False)
    for replica in replicas:
        replica.started()
    fleet.wait_all_rotated()
    assert fleet.stop_all() == {"r0": 0, "r1": 0, "r2": 0}
    assert fleet.succeeded() == dict.fromkeys(fleet.names, 1)
    assert fleet.creates() == {t["project"]: 1 for t in fleet.targets}
    assert all(len(callers) == 1 for callers in fleet.actors().values()), fleet.actors()
    # The leases were contended (a replica found a target held), and never taken from a live holder.
    assert sum(r.statuses()["busy"] for r in fleet.gone) > 0
    print(f"rotations per replica (r2 an hour ahead): {dict(sorted(fleet.spread().items()))}")  # noqa: T201
    fleet.check()
    assert fleet.settled()
