"""SIGKILL of the replica holding a target during each upstream call: another resumes it and it converges."""

import pytest

from tests.ha.conftest import MakeFleet
from tests.ha.fleet import CONNECTION, CREATE, DELETE, PATCH, SELF


pytestmark = pytest.mark.exhaustive

#: (step, upstream, route, earlier requests to the route in the same rotation)
CALLS = [
    ("create", "gitlab", CREATE, 0),
    ("verify", "gitlab", SELF, 0),  # the new token checks itself
    ("push", "infisical", PATCH, 0),
    ("re-read", "infisical", CONNECTION, 1),
    ("revoke", "gitlab", DELETE, 0),
]


@pytest.mark.parametrize(("upstream", "route", "skip"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_a_replica_killed_during_a_call_is_resumed_by_another(
    make_fleet: MakeFleet, upstream: str, route: str, skip: int
) -> None:
    """The holder dies mid-call (the call applied): the other replica resumes after the 5 s lease."""
    fleet = make_fleet(1)
    held = fleet.host.arm(upstream, route, "hang_after", seconds=60, skip=skip)
    fleet.start("r0", "r1")
    assert fleet.host.reached(held, 60)
    holder = fleet.caller_of_last(route)
    survivor = "r1" if holder == "r0" else "r0"
    fleet.kill(holder)
    # Resumed once the lease lapses on the database's clock; the old token revoked (grace 0).
    fleet.wait_all_rotated()
    fleet.check()
    assert fleet.succeeded() == {"p0-deploy": 1}
    assert sum(fleet.creates(survivor).values()) <= 1
    fleet.converge()
    assert fleet.succeeded() == {"p0-deploy": 1}
