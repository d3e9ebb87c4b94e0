"""The fakes in a process of their own, seeded for a fleet, each request attributed to its sender.

The replicas under test are separate processes; the fakes run in another one (a
:mod:`multiprocessing` manager's server, started with ``spawn``), so their request handling never
waits on the test process's own work, and the test drives them through a proxy of
:class:`FakesHost`.

Each replica (a *caller*) gets its own GitLab manager token and its own Infisical access token, so
every request is attributed to the replica that sent it: by the credential it carried, or, for the
new token's self-check, by the replica whose create minted that token. The log also says which
target a request concerned (the project in the path, the connection, or the minted token) and when
it started and ended, so a test can prove that no two replicas acted on one target at once.
"""

import sys
import threading
import time

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from multiprocessing import get_context
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any

from rotator.testing import FakeGitLab, FakeInfisical, Fault, start_fakes
from rotator.testing._http import Request, Response


UA = "rotator/"
MAINTAINER = 40


class FakesHost:
    """Both fakes, ``targets`` projects each held by one connection, and a credential pair per caller."""

    def __init__(self, targets: int, callers: Sequence[str]) -> None:
        """Start and seed the fakes (lives in the host process)."""
        self._stack = ExitStack()
        fakes = self._stack.enter_context(start_fakes())
        self.fakes = fakes
        gitlab, infisical = fakes.gitlab, fakes.infisical
        manager = gitlab.test_only_user("rotator-manager")
        group = gitlab.seed_resource("group", "ha")
        self.targets: list[dict[str, Any]] = []
        self._by_connection: dict[str, int] = {}
        for index in range(targets):
            project = gitlab.seed_resource("project", f"ha/p{index}", parent=group)
            gitlab.seed_member(project, manager, MAINTAINER)
            held = gitlab.seed_resource_token(project, f"p{index}-deploy", ["api"], days=30)
            connection = infisical.seed_connection(held.value, instance_url=gitlab.url, name=f"ha-{index}")
            self._by_connection[connection.id] = project.id
            self.targets.append(
                {
                    "name": f"p{index}-deploy",
                    "project": project.id,
                    "connection_id": connection.id,
                    "adopt_token_id": held.id,
                }
            )
        # A month: the fakes' clock may be moved on by weeks, and a static token is never renewed.
        identity = infisical.seed_identity(ttl=2592000, max_ttl=2592000)
        self.credentials: dict[str, dict[str, str]] = {}
        self._owner: dict[str, str] = {}  # credential value -> caller
        self._minted: dict[str, tuple[str, int]] = {}  # new token value -> (caller, project id)
        for caller in callers:
            manager_token = gitlab.seed_personal_token(manager, ["api"], name=f"manager-{caller}").value
            access_token = infisical.seed_access_token(identity)
            self._owner[manager_token] = self._owner[access_token] = caller
            self.credentials[caller] = {
                "ROTATOR_GITLAB_TOKEN": manager_token,
                "ROTATOR_INFISICAL_TOKEN": access_token,
            }
        self._log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._record(gitlab)
        self._record(infisical)

    # ---- the request log ----------------------------------------------------------------------

    def _record(self, server: FakeGitLab | FakeInfisical) -> None:
        """Wrap the server's dispatch so that each of rotator's requests is logged, attributed."""
        dispatch = server.dispatch

        def logged(request: Request, hold: Any = None) -> Response | None:  # noqa: ANN401 - the fakes' Hold
            matched = server._match(request.method, request.path)  # noqa: SLF001 - the fake's own router
            if matched is None or matched[0].template.startswith("/_fake/") or not _ours(request):
                return dispatch(request, hold)
            route, args = matched
            values = _credentials(request)
            caller = next((self._owner[v] for v in values if v in self._owner), None)
            minted = next((self._minted[v] for v in values if v in self._minted), None)
            if caller is None and minted is not None:
                caller = minted[0]  # the new token's self-check, sent by the replica that made it
            target = _project_of(args, self._by_connection) or (minted[1] if minted else None)
            entry: dict[str, Any] = {
                "upstream": server.upstream,
                "route": route.name,
                "caller": caller,
                "target": target,
                "start": time.time(),
                "end": None,
                "status": None,
            }
            with self._lock:
                self._log.append(entry)
            response = dispatch(request, hold)
            entry["end"], entry["status"] = time.time(), response.status if response else None
            body = response.body if response is not None else None
            if caller is not None and target is not None and isinstance(body, dict) and "token" in body:
                with self._lock:
                    self._minted[str(body["token"])] = (caller, target)
            return response

        server.dispatch = logged  # type: ignore[method-assign]

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        """Rotator's requests from the ``since``-th on (a finished one has ``end`` and ``status``)."""
        with self._lock:
            return [dict(c) for c in self._log[since:]]

    def mark(self) -> int:
        """How many requests are logged now: a position to read :meth:`calls` from later."""
        with self._lock:
            return len(self._log)

    # ---- faults and the clock -------------------------------------------------------------------

    def arm(self, upstream: str, route: str, kind: str, seconds: float = 0.0, skip: int = 0) -> int:
        """Arm a fault on ``upstream``'s ``route`` after ``skip`` untouched requests; its number.

        The number is what :meth:`reached` waits on (a :class:`rotator.testing.Fault` holds an
        event, which cannot cross to the test's process).
        """
        faults = self._server(upstream).faults
        if skip:
            faults.delay(route, 0, times=skip)
        fault = Fault(route, kind, seconds=seconds)  # type: ignore[arg-type]
        faults.add(fault)
        self._faults.append(fault)
        return len(self._faults) - 1

    def reached(self, fault: int, timeout: float) -> bool:
        """Wait until a request has hit fault number ``fault``."""
        return self._faults[fault].reached.wait(timeout)

    def set_latency(self, upstream: str, route: str, seconds: float) -> None:
        """Every request to ``route`` (a glob) waits ``seconds`` first, until cleared."""
        self._server(upstream).faults.set_latency(route, seconds)

    def clear(self) -> None:
        """Disarm every fault and latency."""
        for server in (self.fakes.gitlab, self.fakes.infisical):
            server.faults.clear()

    def advance(self, seconds: float) -> None:
        """Move the fakes' clock on."""
        self.fakes.clock.advance(timedelta(seconds=seconds))

    def offset(self) -> float:
        """How far the fakes' clock is ahead of real time, in seconds."""
        return self.fakes.clock.offset.total_seconds()

    # ---- the truth ------------------------------------------------------------------------------

    def seed(self) -> dict[str, Any]:
        """What a config needs: the URLs, the targets, each caller's credentials, the hooks key."""
        seed = self.fakes.seed
        return {
            "gitlab_url": seed.gitlab_url,
            "infisical_url": seed.infisical_url,
            "hooks_key": seed.test_hooks_key,
            "targets": self.targets,
            "credentials": self.credentials,
        }

    def held_works(self, connection_id: str) -> bool:
        """Whether GitLab accepts the token the connection holds."""
        held = self.fakes.infisical.test_only_held_token(connection_id)
        return self.fakes.gitlab.test_only_accepts(held)

    def active_tokens(self, project_id: int) -> list[int]:
        """The project's active access tokens."""
        return self.fakes.gitlab.test_only_active_token_ids(project_id)

    def secrets(self) -> list[str]:
        """Every credential and token value in play, to scan output for."""
        values = [*self.fakes.gitlab.test_only_minted_values(), self.fakes.seed.infisical_client_secret]
        return values + [v for pair in self.credentials.values() for v in pair.values()]

    def misdeeds(self) -> list[str]:
        """Anything a careful client never does: another upstream's credential, a rotate route, a reuse."""
        found = [
            f"{c.credential_of} credential at {server.upstream} {c.route}"
            for server in (self.fakes.gitlab, self.fakes.infisical)
            for c in server.test_only_stranger_credentials()
        ]
        found += [f"reuse of revoked token {t}" for t in self.fakes.gitlab.test_only_reuse_detections()]
        found += [c.route for c in self.fakes.gitlab.calls(user_agent=UA) if c.route.endswith("/rotate")]
        return found

    def close(self) -> None:
        """Stop the fakes."""
        self._stack.close()

    def _server(self, upstream: str) -> FakeGitLab | FakeInfisical:
        return self.fakes.gitlab if upstream == "gitlab" else self.fakes.infisical


def _ours(request: Request) -> bool:
    """Sent by rotator (not the fake Infisical's own call to GitLab during a PATCH)."""
    return request.headers.get("user-agent", "").startswith(UA)


def _credentials(request: Request) -> list[str]:
    values = [
        request.headers.get("private-token", ""),
        request.headers.get("authorization", "").rpartition(" ")[2],
    ]
    return [v for v in values if v]


def _project_of(args: dict[str, str], by_connection: dict[str, int]) -> int | None:
    if args.get("id", "").isdigit():
        return int(args["id"])
    return by_connection.get(args.get("connectionId", ""))


class _Manager(BaseManager):
    pass


_Manager.register("FakesHost", FakesHost)


@contextmanager
def fakes_host(targets: int, callers: Sequence[str]) -> Iterator[FakesHost]:
    """A :class:`FakesHost` in its own process (a proxy to it), stopped afterwards."""
    manager = _Manager(ctx=get_context("spawn"))
    # The child imports this module by name: under pytest's importlib mode the repository's root
    # is not on sys.path, and a spawned child starts from the parent's sys.path.
    root = str(Path(__file__).parents[2])
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        manager.start()
    finally:
        if added:
            sys.path.remove(root)
    try:
        host: FakesHost = manager.FakesHost(targets, list(callers))  # type: ignore[attr-defined]
        try:
            yield host
        finally:
            host.close()
    finally:
        manager.shutdown()
