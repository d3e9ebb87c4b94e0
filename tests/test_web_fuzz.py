"""Schemathesis against the real daemon's own /openapi.json: no token, a wrong one, the right one.

Cases come from ``APIOperation.as_strategy()`` under a plain ``@given``, one pytest test per operation
and credential. (``schemathesis.pytest.from_fixture`` is not used: with pytest 9 its lazy runner
fails on ``Function._nodeid``.)
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, Case, CheckContext, Response
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Ok

from rotator.testing import start_fakes
from tests.test_web import API_TOKEN, OPERATIONS, Running, finished, running_daemon, trigger


TARGETS = ("app-deploy", "api-deploy")
AnyCase = Case[Any]
AnyOperation = APIOperation[Any, Any, Any, Any]
MAX_EXAMPLES = 40
#: Authorization values a client could send: visible ASCII words, space-separated (as HTTP allows).
AUTHORIZATION = st.one_of(
    st.from_regex(r"\A[!-~]{1,40}( [!-~]{1,40}){0,2}\Z"),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40).map(lambda t: f"Bearer {t}"),
    st.sampled_from([f"Bearer {API_TOKEN}x", f"Bearer {API_TOKEN[:-1]}", f"Basic {API_TOKEN}", API_TOKEN]),
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One daemon (scheduler running, both targets rotated) for every generated case of the module."""
    with start_fakes() as fakes, running_daemon(fakes, Path(tmp_path_factory.mktemp("fuzz"))) as running:
        yield running


@pytest.fixture(scope="module")
def run_id(served: Running) -> str:
    """The id of a finished triggered rotation, so /v1/rotations/{run_id} is also asked a real one."""
    with served.client() as client:
        run: str = trigger(client, TARGETS[0]).json()["id"]
        finished(client, run)
    return run


def load_schema(running: Running, *, security_parameters: bool) -> BaseSchema:
    """The OpenAPI document the running server publishes, loaded by schemathesis.

    ``security_parameters``: whether schemathesis makes up an ``Authorization`` header of its own
    for the bearer scheme (it must be decided before an operation is first looked up).
    """
    schema = schemathesis.openapi.from_url(f"{running.server.url}/openapi.json")
    schema.config.generation.update(with_security_parameters=security_parameters)
    return schema


@pytest.fixture(scope="module")
def bare_schema(served: Running) -> BaseSchema:
    """The served schema, generating no credential: each test decides the Authorization header."""
    return load_schema(served, security_parameters=False)


@pytest.fixture(scope="module")
def guessing_schema(served: Running) -> BaseSchema:
    """The served schema, with schemathesis making up bearer credentials of its own."""
    return load_schema(served, security_parameters=True)


def cases(operation: AnyOperation, run_id: str) -> st.SearchStrategy[AnyCase]:
    """Schemathesis' cases for ``operation``, plus ones naming real targets and a real run.

    Random path parameters only ever reach 404; the real ones make the trigger and status run.
    """
    strategies = [operation.as_strategy()]
    if "{name}" in operation.path:
        strategies += [operation.as_strategy(path_parameters={"name": name}) for name in TARGETS]
    if "{run_id}" in operation.path:
        strategies.append(operation.as_strategy(path_parameters={"run_id": run_id}))
    return st.one_of(strategies)


def v1_needs_the_token(_ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """Any /v1 request without exactly ``Bearer test-api-token`` was answered 401; with it, never 401.

    The scheme is compared case-insensitively (RFC 9110 §11.1), as FastAPI's HTTPBearer does.
    """
    if not case.path.startswith("/v1/"):
        return None
    sent = response.request.headers.get("Authorization")
    scheme, _, credential = (sent or "").partition(" ")
    if scheme.lower() == "bearer" and credential == API_TOKEN:
        assert response.status_code != 401, f"{case.method} {case.path}: the right token was refused"
    else:
        assert response.status_code == 401, (
            f"{case.method} {case.path} with Authorization {sent!r} answered {response.status_code}, not 401"
        )
        assert response.headers.get("www-authenticate") == ["Bearer"]
    return True


CHECKS = [not_a_server_error, response_schema_conformance, v1_needs_the_token]


def test_the_schema_has_exactly_these_operations(bare_schema: BaseSchema) -> None:
    """The fuzzed operation list is the server's: a new route cannot slip past the fuzzing."""
    results = list(bare_schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results
    served = {(r.ok().method.upper(), r.ok().path) for r in results if isinstance(r, Ok)}
    assert served == set(OPERATIONS)


@pytest.mark.parametrize("credential", ["none", "wrong", "right"])
@pytest.mark.parametrize("route", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_conforms(
    request: pytest.FixtureRequest, run_id: str, route: tuple[str, str], credential: str
) -> None:
    """No 5xx, every answer matches the schema, and /v1 is 401 exactly when the token is not ours."""
    method, path = route
    # "wrong": schemathesis' own made-up bearer values, or one of ours (None keeps its own).
    schema: BaseSchema = request.getfixturevalue(
        "guessing_schema" if credential == "wrong" else "bare_schema"
    )
    operation = schema[path][method]
    authorizations = st.one_of(st.none(), AUTHORIZATION) if credential == "wrong" else st.none()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=cases(operation, run_id), authorization=authorizations)
    def conforms(case: AnyCase, authorization: str | None) -> None:
        headers = {"Authorization": authorization} if authorization is not None else {}
        if credential == "right":
            headers = {"Authorization": f"Bearer {API_TOKEN}"}
        response = case.call(headers=headers, timeout=10)
        case.validate_response(response, checks=CHECKS, headers=headers)

    conforms()
