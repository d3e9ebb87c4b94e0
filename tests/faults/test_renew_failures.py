"""Every failure mode of the Infisical token renewal, through the real adapter (in process).

A ``run-once`` process lives seconds and an identity token lives hours, so only a long-running
process renews; this drives the same adapter with the fakes' clock moved to the renewal window.
"""

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from rotator.adapters.infisical import InfisicalAPI, InfisicalAuth
from rotator.core.errors import InfisicalError
from rotator.core.secret import Secret
from rotator.testing import Fakes
from rotator.testing.transport import FakeTransport
from tests.faults import ledger
from tests.faults.calls import CONNECTION, LOGIN, RENEW
from tests.faults.matrix import MODES, fault_for


@pytest.fixture
def api(fakes: Fakes) -> Iterator[InfisicalAPI]:
    """The adapter with Universal Auth, the fakes' clock, 1 s timeouts and no real sleeps."""
    auth = InfisicalAuth.universal(fakes.seed.infisical_client_id, Secret(fakes.seed.infisical_client_secret))
    adapter = InfisicalAPI(
        fakes.seed.infisical_url,
        auth,
        timeout=1.0,
        user_agent="rotator/faults",
        sleep=lambda _s: None,
        clock=fakes.clock.now,
        # In process: a hang costs no real second (rotator.testing.transport).
        client=httpx.Client(transport=FakeTransport(fakes.gitlab, fakes.infisical), timeout=1.0),
    )
    yield adapter
    adapter.close()


@pytest.mark.parametrize("times", [1, None], ids=["once", "persistent"])
@pytest.mark.parametrize("mode", list(MODES))
def test_a_failing_renewal_never_stops_a_read(
    fakes: Fakes, api: InfisicalAPI, mode: str, times: int | None
) -> None:
    """Renewal fails with MODE: the read still succeeds, on the old token or after a fresh login."""
    ledger.count("cases")
    connection = fakes.seed.connection_ids[0]
    api.get_connection(connection)
    fakes.clock.advance(timedelta(seconds=7200 * 0.85))
    fault = fakes.infisical.faults.add(fault_for(RENEW, mode, times))
    try:
        assert api.get_connection(connection).id == connection
    except InfisicalError as error:  # pragma: no cover - the assertion below explains it
        pytest.fail(f"a failed renewal stopped the read: {error}")
    assert fault.reached.is_set()
    ledger.count("faults")
    # Past the token's life, a persistent failure must end in a fresh login, not in an error.
    fakes.clock.advance(timedelta(seconds=7200 * 0.2))
    assert api.get_connection(connection).id == connection
    counts = fakes.infisical.call_counts(user_agent="rotator/faults")
    assert counts[CONNECTION] == 3
    # Persistently failing, the token is replaced by exactly one fresh login; once, by at most one.
    assert counts[LOGIN] == 2 if times is None else counts[LOGIN] in {1, 2}
