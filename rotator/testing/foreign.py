"""A host nobody configured: it records every request it receives, so a test can prove none came.

A redirect or a next-page link from a fake (the ``redirect`` and ``foreign_next`` faults) can
point here. Whatever arrives, on any path and method, is recorded with the credential headers it
carried (``PRIVATE-TOKEN``, ``Authorization``, ``Cookie``: their names, never their values) and
answered ``200 []``, so a client that follows the link carries on as if nothing happened, which is
exactly what a test must catch::

    with ForeignHost().running() as foreign:
        fakes.gitlab.faults.redirect("GET /api/v4/projects/:id", foreign.url)
        ...
        assert foreign.received() == []
"""

import threading

from dataclasses import dataclass

from rotator.testing._http import FakeServer, Hold, Request, Response


#: The headers that carry a credential, as the fakes see them (lower-cased).
CREDENTIAL_HEADERS = ("private-token", "authorization", "cookie")


@dataclass(frozen=True, slots=True)
class Received:
    """One request that reached the foreign host."""

    method: str
    path: str
    #: Which of :data:`CREDENTIAL_HEADERS` it carried (names only).
    credentials: tuple[str, ...]


class ForeignHost(FakeServer):
    """A loopback server outside every configured upstream; see the module docstring."""

    upstream = "foreign"

    def __init__(self) -> None:
        """Create the host (not yet listening): nothing received."""
        super().__init__()
        self._received: list[Received] = []
        self._received_lock = threading.Lock()

    def dispatch(self, request: Request, hold: Hold | None = None) -> Response:
        """Record the request, whatever its path (control routes included), and answer ``200 []``."""
        del hold  # no faults here
        carried = tuple(name for name in CREDENTIAL_HEADERS if request.headers.get(name))
        with self._received_lock:
            self._received.append(Received(request.method, request.path, carried))
        return Response(200, [])

    def received(self) -> list[Received]:
        """Every request received so far, oldest first."""
        with self._received_lock:
            return list(self._received)
