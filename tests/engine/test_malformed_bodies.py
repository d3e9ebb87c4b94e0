"""Malformed upstream answers through the engine: an error naming target, step and status; nothing revoked."""

from pathlib import Path
from typing import Any

import pytest

from rotator.testing import Fakes
from tests.engine.harness import EngineCase
from tests.faults import ledger
from tests.faults.calls import CONNECTION, CREATE, LOGIN, PATCH, PROJECT, SELF, TOKEN, server_for
from tests.faults.campaign import identity_client


HTML = "<html><body><h1>Welcome</h1><p>Please sign in</p></body></html>"
TRUNCATED = '{"appConnection": {"id": "3c90c3cc-0d44'


def connection_view(fakes: Fakes) -> dict[str, Any]:
    """What Infisical answers for the first connection right now (read as the seeded identity)."""
    with identity_client(fakes) as client:
        answer = client.get(f"/api/v1/app-connections/gitlab/{fakes.seed.connection_ids[0]}")
    view: dict[str, Any] = answer.json()
    return view


def without_hash(fakes: Fakes) -> dict[str, Any]:
    """The first connection as Infisical answers it, less its credentialsHash."""
    view = connection_view(fakes)
    del view["appConnection"]["credentialsHash"]
    return view


BODIES: dict[str, tuple[str, int, Any]] = {
    "gitlab-project-html": (PROJECT, 200, HTML),
    "gitlab-adopted-token-truncated": (TOKEN, 200, '{"id": 1, "name": "app-de'),
    "gitlab-create-html": (CREATE, 201, HTML),
    "gitlab-create-truncated": (CREATE, 201, '{"id": 99, "token": "glpat-'),
    "gitlab-create-no-token": (CREATE, 201, {"id": 99, "name": "x", "active": True}),
    "gitlab-self-check-html": (SELF, 200, HTML),
    "infisical-login-html": (LOGIN, 200, HTML),
    "infisical-login-no-token": (LOGIN, 200, {"expiresIn": 7200, "tokenType": "Bearer"}),
    "infisical-read-html": (CONNECTION, 200, HTML),
    "infisical-read-truncated": (CONNECTION, 200, TRUNCATED),
    "infisical-read-no-hash": (CONNECTION, 200, "without-hash"),
    "infisical-patch-html": (PATCH, 200, HTML),
    "infisical-patch-truncated": (PATCH, 200, TRUNCATED),
    "infisical-patch-no-hash": (PATCH, 200, "without-hash"),
    "infisical-patch-hash-unchanged": (PATCH, 200, "unchanged"),
}


@pytest.mark.parametrize("case_name", list(BODIES))
def test_a_malformed_answer_is_a_clear_error_and_revokes_nothing(
    fakes: Fakes, tmp_path: Path, case_name: str
) -> None:
    """Every answer of ROUTE is malformed: exit 1 naming target, step and status; the old token lives."""
    route, status, body = BODIES[case_name]
    case = EngineCase(fakes, tmp_path)
    if body == "without-hash":
        body = without_hash(fakes)
    elif body == "unchanged":
        body = connection_view(fakes)
    fault = server_for(fakes, route).faults.fail(route, status, body=body, times=None)
    result = case.run("run-once")
    assert fault.reached.is_set()
    ledger.count("bad_inputs")
    case.assert_reported(result)
    assert case.adopted() in case.h.active_tokens(0), "the old token was revoked"
    case.converge()
