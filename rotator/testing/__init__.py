"""Stand-in GitLab and Infisical servers for tests, demos and users' own trials.

They are real HTTP servers on 127.0.0.1 that the real clients talk to unchanged::

    from rotator.testing import start_fakes

    with start_fakes() as fakes:
        print(fakes.gitlab.url, fakes.infisical.url, fakes.seed.connection_ids)
        fakes.gitlab.faults.fail("POST /api/v4/projects/:id/access_tokens", 503)
        fakes.clock.advance(timedelta(days=31))

Both share one :class:`FakeClock`, and each records a request carrying the other's credential
(:meth:`FakeGitLab.test_only_stranger_credentials`). :class:`ForeignHost` is a third server that
belongs to nobody: a redirect or next-page link can point there, and it records what arrives.
Methods named ``test_only_*`` and routes under ``/_fake/`` read secrets and exist only on the
fakes, so tests can prove what a connection really holds.
"""

from rotator.testing._clock import FakeClock
from rotator.testing._faults import Fault, Faults
from rotator.testing._http import Call
from rotator.testing.foreign import ForeignHost, Received
from rotator.testing.gitlab import FakeGitLab
from rotator.testing.infisical import FakeInfisical
from rotator.testing.seed import Fakes, Seed, start_fakes


__all__ = [
    "Call",
    "FakeClock",
    "FakeGitLab",
    "FakeInfisical",
    "Fakes",
    "Fault",
    "Faults",
    "ForeignHost",
    "Received",
    "Seed",
    "start_fakes",
]
