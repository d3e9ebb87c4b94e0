"""Every upstream call rotator makes, where in a rotation's life it makes it, and how to get there.

A :class:`Call` names the fake's route and the phase of the cycle in which the call happens, plus
how many earlier requests to the same route come first in that phase (the connection is read
twice in a rotation: before the PATCH and after it). ``reach`` brings a fresh :class:`Case` to
the moment just before the phase's run. :func:`calls_for` gives the same calls for a case whose
target is a group or a service account: the same phases on that kind's routes.
"""

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest

from rotator.testing import FakeGitLab, FakeInfisical, Fakes, Fault
from tests.faults.campaign import CRASHED, Case
from tests.kinds import KINDS


PROJECT = "GET /api/v4/projects/:id"
LIST = "GET /api/v4/projects/:id/access_tokens"
TOKEN = "GET /api/v4/projects/:id/access_tokens/:token_id"
CREATE = "POST /api/v4/projects/:id/access_tokens"
SELF = "GET /api/v4/personal_access_tokens/self"
DELETE = "DELETE /api/v4/projects/:id/access_tokens/:token_id"
LOGIN = "POST /api/v1/auth/universal-auth/login"
RENEW = "POST /api/v1/auth/token/renew"
CONNECTION = "GET /api/v1/app-connections/gitlab/:connectionId"
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"
#: A group's tokens, and a group service account's (which has no GET for one token: its list is read).
GROUP = "GET /api/v4/groups/:id"
ACCOUNT_TOKENS = "/api/v4/groups/:id/service_accounts/:user_id/personal_access_tokens"
#: Each kind's route for a project route (``None``: that kind makes no such call).
KIND_ROUTES: dict[str, dict[str, str | None]] = {
    "group": {
        PROJECT: GROUP,
        LIST: "GET /api/v4/groups/:id/access_tokens",
        TOKEN: "GET /api/v4/groups/:id/access_tokens/:token_id",
        CREATE: "POST /api/v4/groups/:id/access_tokens",
        DELETE: "DELETE /api/v4/groups/:id/access_tokens/:token_id",
    },
    "service_account": {
        PROJECT: None,  # the target names its group by id: nothing to look up
        LIST: f"GET {ACCOUNT_TOKENS}",
        TOKEN: f"GET {ACCOUNT_TOKENS}",
        CREATE: f"POST {ACCOUNT_TOKENS}",
        DELETE: f"DELETE {ACCOUNT_TOKENS}/:token_id",
    },
}


def server_for(fakes: Fakes, route: str) -> FakeGitLab | FakeInfisical:
    """The fake that serves ``route`` (``"METHOD /path"``)."""
    return fakes.gitlab if route.split()[1].startswith("/api/v4") else fakes.infisical


@dataclass(frozen=True)
class Call:
    """One upstream call at one point of the cycle."""

    label: str
    route: str
    phase: str  # "first" run, the "grace" run that revokes, or the "recovery" run after a crash
    skip: int = 0  # earlier requests to the route in the same run

    def server(self, case: Case) -> FakeGitLab | FakeInfisical:
        """The fake that serves this call."""
        return server_for(case.fakes, self.route)

    def reach(self, case: Case) -> None:
        """Bring ``case`` to just before the run that makes this call."""
        if self.phase == "grace":
            assert case.run("run-once").code == 0
            case.fakes.clock.advance(timedelta(minutes=61))
        elif self.phase == "recovery":
            assert case.run("run-once", crash_after="PLANNED").code == CRASHED
            case.fakes.clock.advance(timedelta(minutes=11))

    def arm(self, case: Case, fault: Fault) -> Fault:
        """Let ``skip`` requests through untouched, then arm ``fault`` on this call's route."""
        faults = self.server(case).faults
        if self.skip:
            faults.delay(self.route, 0, times=self.skip)
        return faults.add(fault)


CALLS = (
    Call("gitlab project lookup", PROJECT, "first"),
    Call("gitlab adopted-token check", TOKEN, "first"),
    Call("gitlab token create", CREATE, "first"),
    Call("gitlab new-token self-check", SELF, "first"),
    Call("infisical login", LOGIN, "first"),
    Call("infisical read before push", CONNECTION, "first"),
    Call("infisical patch", PATCH, "first"),
    Call("infisical re-read after push", CONNECTION, "first", skip=1),
    Call("gitlab old-token check before revoke", TOKEN, "grace"),
    Call("infisical read before revoke", CONNECTION, "grace"),
    Call("gitlab revoke", DELETE, "grace"),
    Call("gitlab list by name after a crash", LIST, "recovery"),
)


def calls_for(kind: str) -> tuple[Call, ...]:
    """:data:`CALLS` for a case whose target is of ``kind``: each on that kind's route, if it makes it."""
    if kind == "project":
        return CALLS
    routes = KIND_ROUTES[kind]
    moved = [(call, routes.get(call.route, call.route)) for call in CALLS]
    return tuple(replace(call, route=route) for call, route in moved if route is not None)


def kinds(*, heavy: bool) -> list[Any]:
    """The kinds as parameters: for a ``heavy`` case, all but ``project`` in the ``exhaustive`` tier."""
    return [
        pytest.param(kind, marks=pytest.mark.exhaustive if heavy and kind != "project" else ())
        for kind in KINDS
    ]


def kind_calls() -> list[Any]:
    """``(kind, call)`` for every kind and each of its calls; the kinds other than ``project`` exhaustive."""
    return [
        pytest.param(
            kind,
            call,
            marks=pytest.mark.exhaustive if kind != "project" else (),
            id=f"{kind}-{call.label.replace(' ', '-')}",
        )
        for kind in KINDS
        for call in calls_for(kind)
    ]
