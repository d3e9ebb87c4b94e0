"""Scriptable faults for the fake servers.

A test arms faults on a route (``"POST /api/v4/projects/:id/access_tokens"``, or a glob such as
``"*access_tokens*"``); each request to a matching route consumes at most one armed fault, oldest
first. Kinds:

``fail``
    Answer ``status`` without running the handler (nothing is applied). The body and headers are the
    server's own canned ones for that status and ``shape`` unless given.
``drop_before``
    Close the connection without applying the request or answering (a proxy dying, a reset).
``drop_after``
    Apply the request, then close the connection without answering (a lost response).
``hang``
    Hold the request open for ``seconds`` (or until the server stops), then close it unanswered
    without applying it, so the client hits its read timeout.
``hang_after``
    Apply the request, then hold it open for ``seconds`` and close it unanswered: the moment
    between a server applying a request and its client hearing so (a crash lands here).
``latency``
    Sleep ``seconds`` before handling; does not count against ``times`` unless ``times`` is set.
``redirect``
    Answer ``status`` (302 unless given) with ``Location:`` ``location``, without running the
    handler (nothing is applied): a proxy sending clients to another host. A ``location`` without
    a path gets the request's own path and query appended (a moved server); one with a path is
    sent as it is (a sign-in page). Point ``location`` at a :class:`~rotator.testing.ForeignHost`
    to see what a client that follows it would send there.
``foreign_next``
    Run the handler, then make the answer's ``Link: rel="next"`` point to ``location`` followed by
    the request's path and ``page=2``, whether or not the list has a next page: a list whose
    pagination leads to another host.

Each fault's ``reached`` event is set once a request has hit it (for ``drop_after`` and
``hang_after``: once the request has been applied), so a test can act at exactly that moment.

Latency that should apply to every call of a route is a separate, persistent setting
(:meth:`Faults.set_latency`), so benchmarks can add a fixed delay per upstream call.
"""

import fnmatch
import threading

from dataclasses import dataclass, field
from typing import Any, Literal


FaultKind = Literal[
    "fail", "drop_before", "drop_after", "hang", "hang_after", "latency", "redirect", "foreign_next"
]
KINDS: tuple[FaultKind, ...] = (
    "fail",
    "drop_before",
    "drop_after",
    "hang",
    "hang_after",
    "latency",
    "redirect",
    "foreign_next",
)


@dataclass(slots=True)
class Fault:
    """One armed fault; ``times`` is how many more requests it will hit (``None``: forever)."""

    route: str
    kind: FaultKind
    status: int = 500
    shape: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    times: int | None = 1
    location: str = ""  # redirect and foreign_next: the other host's base URL
    reached: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def matches(self, route: str) -> bool:
        """Whether this fault applies to ``route`` (exact name or glob)."""
        return self.route == route or fnmatch.fnmatchcase(route, self.route)


class Faults:
    """The armed faults and persistent latencies of one fake server; thread-safe."""

    def __init__(self) -> None:
        """Start with nothing armed."""
        self._lock = threading.Lock()
        self._armed: list[Fault] = []
        self._latency: dict[str, float] = {}
        # latency_for's answers per route: every request asks, and the globs change rarely.
        self._latency_of: dict[str, float] = {}

    def add(self, fault: Fault) -> Fault:
        """Arm ``fault`` and return it."""
        if fault.kind not in KINDS:
            msg = f"unknown fault kind {fault.kind!r}; expected one of {', '.join(KINDS)}"
            raise ValueError(msg)
        if fault.kind in {"redirect", "foreign_next"} and not fault.location:
            msg = f"a {fault.kind} fault needs a location (the other host's base URL)"
            raise ValueError(msg)
        if fault.times is not None and fault.times < 1:
            msg = "times must be at least 1 (or None for every request)"
            raise ValueError(msg)
        with self._lock:
            self._armed.append(fault)
        return fault

    def fail(  # noqa: PLR0913 - every field of a fault is worth setting
        self,
        route: str,
        status: int,
        *,
        times: int | None = 1,
        shape: str | None = None,
        body: Any = None,  # noqa: ANN401 - any JSON value, or bytes/str for a raw body
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Answer the next ``times`` requests to ``route`` with ``status``, applying nothing."""
        return self.add(
            Fault(route, "fail", status, shape, body, dict(headers or {}), times=times),
        )

    def drop_before(self, route: str, *, times: int | None = 1) -> Fault:
        """Close the next ``times`` connections to ``route`` unanswered, applying nothing."""
        return self.add(Fault(route, "drop_before", times=times))

    def drop_after(self, route: str, *, times: int | None = 1) -> Fault:
        """Apply the next ``times`` requests to ``route``, then close without answering."""
        return self.add(Fault(route, "drop_after", times=times))

    def hang(self, route: str, *, seconds: float = 3600.0, times: int | None = 1) -> Fault:
        """Hold the next ``times`` requests to ``route`` open for ``seconds``, then drop them."""
        return self.add(Fault(route, "hang", seconds=seconds, times=times))

    def hang_after(self, route: str, *, seconds: float = 3600.0, times: int | None = 1) -> Fault:
        """Apply the next ``times`` requests to ``route``, then hold them open and drop them."""
        return self.add(Fault(route, "hang_after", seconds=seconds, times=times))

    def delay(self, route: str, seconds: float, *, times: int | None = 1) -> Fault:
        """Delay the next ``times`` requests to ``route`` by ``seconds``, then handle normally."""
        return self.add(Fault(route, "latency", seconds=seconds, times=times))

    def redirect(self, route: str, location: str, *, status: int = 302, times: int | None = 1) -> Fault:
        """Send the next ``times`` requests to ``route`` to ``location`` + their path with ``status``."""
        return self.add(Fault(route, "redirect", status, times=times, location=location))

    def foreign_next(self, route: str, location: str, *, times: int | None = 1) -> Fault:
        """Answer the next ``times`` requests to ``route`` with a next-page link under ``location``."""
        return self.add(Fault(route, "foreign_next", 200, times=times, location=location))

    def set_latency(self, route: str, seconds: float) -> None:
        """Add ``seconds`` to every request of ``route`` (a glob; ``"*"`` for all) until cleared."""
        with self._lock:
            if seconds <= 0:
                self._latency.pop(route, None)
            else:
                self._latency[route] = seconds
            self._latency_of.clear()

    def latency_for(self, route: str) -> float:
        """The persistent latency of ``route``: the largest matching setting."""
        with self._lock:
            found = self._latency_of.get(route)
            if found is None:
                found = self._latency_of[route] = max(
                    (s for r, s in self._latency.items() if fnmatch.fnmatchcase(route, r)),
                    default=0.0,
                )
            return found

    def take(self, route: str) -> Fault | None:
        """Consume and return the oldest armed fault matching ``route``, if any."""
        with self._lock:
            for index, fault in enumerate(self._armed):
                if fault.matches(route):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            del self._armed[index]
                    return fault
        return None

    def pending(self) -> list[Fault]:
        """The faults still armed, oldest first."""
        with self._lock:
            return list(self._armed)

    def clear(self) -> None:
        """Disarm every fault and drop every persistent latency."""
        with self._lock:
            self._armed.clear()
            self._latency.clear()
            self._latency_of.clear()
