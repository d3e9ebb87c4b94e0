"""The daemon's HTTP face over real loopback HTTP: probes, auth, the trigger, status and metrics."""

import threading
import time

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from prometheus_client.parser import text_string_to_metric_families

from rotator.adapters.metrics import Metrics
from rotator.core.errors import JournalUnavailableError
from rotator.core.secret import Secret
from rotator.doors import wiring
from rotator.doors.daemon import Daemon
from rotator.doors.web import Server, create_app
from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, Harness, patch_by_hand


API_TOKEN = "test-api-token"
APP, API = "app-deploy", "api-deploy"
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"
#: Every route, as (method, path) with the path parameters filled in.
V1_ROUTES = (
    ("GET", "/v1/targets"),
    ("GET", f"/v1/targets/{APP}"),
    ("POST", f"/v1/targets/{APP}/rotate"),
    ("GET", "/v1/rotations/0123456789abcdef"),
)
OPEN_ROUTES = ("/healthz", "/readyz", "/metrics", "/openapi.json")
#: Every operation /openapi.json documents (the document itself is not listed in it).
OPERATIONS = (
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/targets"),
    ("GET", "/v1/targets/{name}"),
    ("POST", "/v1/targets/{name}/rotate"),
    ("GET", "/v1/rotations/{run_id}"),
)


@dataclass
class Running:
    """A daemon built in this process, its HTTP server, and the fakes behind it."""

    fakes: Fakes
    harness: Harness
    rt: wiring.Runtime
    daemon: Daemon
    server: Server

    def client(self, token: str | None = API_TOKEN) -> httpx.Client:
        """An HTTP client for the server, sending ``Authorization: Bearer token`` unless ``None``."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=10)

    def held_works(self, index: int = 0) -> bool:
        """Whether GitLab accepts the token Infisical now holds for the target at ``index``."""
        return self.harness.held_works(index)


def wait_until(ready: Callable[[], bool], seconds: float = 15, what: str = "condition") -> None:
    """Poll ``ready`` until it is true, failing the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.02)
    pytest.fail(f"{what} not met within {seconds}s")


def _settled(daemon: Daemon) -> bool:
    """The first scheduled pass is over: every target rotated, nothing running, credentials read."""
    targets = daemon.status()["targets"]
    _, body = daemon.readiness()
    return (
        all(t["last_outcome"] == "succeeded" for t in targets)
        and daemon.in_flight == 0
        and body["gitlab"]["expires_at"] is not None
        and body["infisical"]["expires_at"] is not None
    )


@contextmanager
def running_daemon(  # noqa: PLR0913 - each keyword is one test's knob
    fakes: Fakes,
    folder: Path,
    *,
    api_token: str | None = API_TOKEN,
    scheduled: bool = True,
    check_interval: str = "1h",
    workers: int = 4,
    min_trigger_interval: str | None = None,
    clock_offset: str | None = None,
    grace: str = "0s",
    state_url: str | None = None,
) -> Iterator[Running]:
    """A daemon for both example targets (grace 0s unless ``grace``) serving on an ephemeral loopback port.

    ``scheduled`` starts the scheduler and waits for its first pass (which rotates both
    never-rotated targets and reads rotator's own credentials), so the tests start from a quiet,
    rotated state; without it nothing runs, not even a triggered rotation.
    ``min_trigger_interval`` is written to the config if given (else the default, 1m applies);
    ``clock_offset`` moves the daemon's clock (the armed test hook). Another daemon on the same
    ``folder`` shares the journal: a second replica, or the same one restarted; so does one given the
    same ``state_url`` (the journal's, instead of the folder's SQLite file).
    """
    harness = Harness(fakes, folder, grace=grace)
    path = folder / "rotator.yaml"
    document = yaml.safe_load(path.read_text())
    document["daemon"] = {"listen": "127.0.0.1:0", "check_interval": check_interval, "jitter": "0s"}
    if min_trigger_interval is not None:
        document["daemon"]["min_trigger_interval"] = min_trigger_interval
    document["max_concurrent_rotations"] = workers
    if state_url is not None:
        document["state"] = {"url": state_url}
    path.write_text(yaml.safe_dump(document))
    environ = dict(fakes.seed.environment())
    if clock_offset is not None:
        environ["ROTATOR_TEST_CLOCK_OFFSET"] = clock_offset
    config = wiring.load(str(path), environ)
    metrics = Metrics()
    rt = wiring.build(config, environ, observers=(metrics,), on_response=metrics.on_response)
    daemon = Daemon(rt, metrics, trigger_enabled=api_token is not None)
    token = Secret(api_token) if api_token is not None else None
    server = Server(create_app(daemon, metrics.registry, token), "127.0.0.1", 0)
    server.start()
    try:
        if scheduled:
            daemon.start()
            wait_until(lambda: _settled(daemon), what="the daemon's first scheduled pass")
        yield Running(fakes, harness, rt, daemon, server)
    finally:
        if scheduled and not daemon.draining.is_set():
            assert daemon.stop(timedelta(seconds=10)), "a run was still in flight at teardown"
        server.stop()
        rt.close()


@pytest.fixture
def running(fakes: Fakes, tmp_path: Path) -> Iterator[Running]:
    """A scheduled daemon whose first pass has rotated both targets, with the trigger on."""
    with running_daemon(fakes, tmp_path) as daemon:
        yield daemon


@pytest.fixture
def client(running: Running) -> Iterator[httpx.Client]:
    """An HTTP client for ``running`` carrying the right bearer token."""
    with running.client() as http:
        yield http


def trigger(client: httpx.Client, name: str) -> httpx.Response:
    """``POST /v1/targets/{name}/rotate``, retried while a scheduled idle check holds the target.

    The scheduler's checks take the same per-target lock as the trigger, so a POST racing the tail
    of one (it re-plans the wake-up after the run) may be told 409 ``rotating`` for a moment.
    """
    deadline = time.monotonic() + 5
    while True:
        answer = client.post(f"/v1/targets/{name}/rotate")
        if answer.status_code != 409 or answer.json()["reason"] != "rotating" or time.monotonic() > deadline:
            return answer
        time.sleep(0.02)


def finished(client: httpx.Client, run_id: str, seconds: float = 15) -> dict[str, Any]:
    """Poll ``/v1/rotations/{run_id}`` until the run is finished (or cancelled); its last state."""
    state: dict[str, Any] = {}

    def done() -> bool:
        nonlocal state
        answer = client.get(f"/v1/rotations/{run_id}")
        assert answer.status_code == 200, answer.text
        state = answer.json()
        return state["status"] in {"finished", "cancelled"}

    wait_until(done, seconds, what=f"rotation request {run_id} to finish")
    return state


def samples(scrape: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called ``name`` in a Prometheus text scrape, as (labels, value)."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == name
    ]


# -- the open routes ------------------------------------------------------------------------------
def test_healthz_answers_ok(running: Running) -> None:
    """/healthz is 200 {"status": "ok"} with no credential."""
    with running.client(token=None) as http:
        answer = http.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_readyz_is_200_with_every_field(running: Running) -> None:
    """/readyz is 200 once running: journal ok, both credentials ok with their expiry, not draining."""
    with running.client(token=None) as http:
        answer = http.get("/readyz")
    assert answer.status_code == 200
    body = answer.json()
    assert body == {
        "ready": True,
        "journal": "ok",
        "gitlab": {"credential": "ok", "expires_at": body["gitlab"]["expires_at"]},
        "infisical": {"credential": "ok", "expires_at": body["infisical"]["expires_at"]},
        "draining": False,
    }
    # The seeded manager token lives 365 days; Infisical's access token hours: both in the future.
    now = datetime.now(UTC)
    for upstream in ("gitlab", "infisical"):
        assert datetime.fromisoformat(body[upstream]["expires_at"]) > now


def refuse_credential(running: Running, client: httpx.Client, upstream: str) -> None:
    """Make ``upstream`` answer 401 to everything, and have a triggered run of app-deploy meet it."""
    fake = running.fakes.gitlab if upstream == "gitlab" else running.fakes.infisical
    fake.faults.fail("*", 401, times=None)
    run = finished(client, trigger(client, APP).json()["id"])
    assert run["outcome"] == "failed"
    assert run["failed"] is True
    fake.faults.clear()


@pytest.mark.parametrize("upstream", ["gitlab", "infisical"])
def test_readyz_is_503_after_an_upstream_refused_our_credential(
    running: Running, client: httpx.Client, upstream: str
) -> None:
    """A 401 to rotator's own GitLab or Infisical credential makes /readyz 503, naming which one."""
    refuse_credential(running, client, upstream)
    with running.client(token=None) as http:
        answer = http.get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["ready"] is False
    assert body["journal"] == "ok"
    assert body[upstream]["credential"] == "refused"
    other = "infisical" if upstream == "gitlab" else "gitlab"
    assert body[other]["credential"] == "ok"


def test_readyz_recovers_once_gitlab_accepts_the_manager_token_again(
    running: Running, client: httpx.Client
) -> None:
    """Refused is as of the credential's last use: the next accepted GitLab call makes /readyz 200."""
    refuse_credential(running, client, "gitlab")
    assert client.get("/readyz").status_code == 503
    assert finished(client, trigger(client, API).json()["id"])["outcome"] == "done"
    again = client.get("/readyz")
    assert again.status_code == 200, again.text
    assert again.json()["gitlab"]["credential"] == "ok"


def test_readyz_is_503_draining_while_a_rotation_finishes_and_healthz_stays_200(
    running: Running, client: httpx.Client
) -> None:
    """Stop requested with a rotation in flight: /readyz 503 saying draining, /healthz still 200."""
    before = client.get("/readyz")
    assert (before.status_code, before.json()["draining"]) == (200, False)
    slow = running.fakes.infisical.faults.delay(PATCH, 3.0)
    run_id = trigger(client, APP).json()["id"]
    assert slow.reached.wait(15)
    drained: list[bool] = []
    stopping = threading.Thread(target=lambda: drained.append(running.daemon.stop(timedelta(seconds=30))))
    stopping.start()
    wait_until(lambda: client.get("/readyz").json()["draining"], what="/readyz to say draining")
    ready, health = client.get("/readyz"), client.get("/healthz")
    in_flight = client.get(f"/v1/rotations/{run_id}").json()["status"]
    stopping.join(30)
    assert in_flight == "running"  # the probes above saw the drain, not its end
    assert ready.status_code == 503
    body = ready.json()
    # Draining alone makes it unready: the journal and both credentials are fine.
    assert (body["ready"], body["draining"], body["journal"]) == (False, True, "ok")
    assert (body["gitlab"]["credential"], body["infisical"]["credential"]) == ("ok", "ok")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert drained == [True]
    assert finished(client, run_id)["outcome"] == "done"
    assert running.held_works(0)


def test_metrics_after_a_rotation_count_it_and_leak_no_token(running: Running, client: httpx.Client) -> None:
    """/metrics counts rotations and upstream requests, shows expiry gauges, and holds no token value."""
    assert finished(client, trigger(client, APP).json()["id"])["outcome"] == "done"
    with running.client(token=None) as http:
        answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    scrape = answer.text
    rotations = {
        (labels["target"], labels["outcome"]): value
        for labels, value in samples(scrape, "rotator_rotations_total")
    }
    # The first scheduled pass rotated each target once; the trigger rotated app-deploy again.
    assert rotations[APP, "succeeded"] == 2
    assert rotations[API, "succeeded"] == 1
    assert rotations[APP, "failed"] == 0
    requests = {
        (labels["upstream"], labels["route"], labels["status"]): value
        for labels, value in samples(scrape, "rotator_upstream_requests_total")
    }
    assert requests["gitlab", "POST /projects/:id/access_tokens", "201"] == 3
    assert requests["infisical", PATCH, "200"] == 3
    expiry = {
        labels["target"]: value for labels, value in samples(scrape, "rotator_token_expiry_timestamp_seconds")
    }
    for row in client.get("/v1/targets").json()["targets"]:
        midnight = datetime.combine(date.fromisoformat(row["expires_at"]), day_time(), UTC)
        assert expiry[row["target"]] == midnight.timestamp()
    assert "glpat-" not in scrape
    for value in running.fakes.gitlab.test_only_minted_values():
        assert value not in scrape


def test_openapi_lists_every_route(running: Running) -> None:
    """/openapi.json documents every route, and the bearer scheme on exactly the /v1 ones."""
    with running.client(token=None) as http:
        answer = http.get("/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) == set(OPERATIONS)
    schemes = document["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    for (_, path), operation in operations.items():
        guarded = path.startswith("/v1/")
        assert bool(operation.get("security")) == guarded, path
        if guarded:
            assert {"401", "503"} <= set(operation["responses"]), path


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/nope", 404), ("DELETE", "/v1/targets", 405)]
)
def test_router_errors_have_the_problem_shape(running: Running, method: str, path: str, status: int) -> None:
    """An unknown path or method answers the same {"reason", "detail"} shape as every other error."""
    with running.client() as http:
        answer = http.request(method, path)
    assert answer.status_code == status
    assert set(answer.json()) == {"reason", "detail"}


# -- authentication ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Bearer {API_TOKEN}x", f"Basic {API_TOKEN}", API_TOKEN, "Bearer"],
    ids=["absent", "wrong", "longer", "basic", "no-scheme", "empty"],
)
@pytest.mark.parametrize(("method", "path"), V1_ROUTES, ids=[f"{m} {p}" for m, p in V1_ROUTES])
def test_v1_needs_the_bearer_token(
    running: Running, method: str, path: str, authorization: str | None
) -> None:
    """Every /v1 route answers 401 with WWW-Authenticate: Bearer unless the exact token is sent."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    mutations = running.harness.mutations()
    with running.client(token=None) as http:
        answer = http.request(method, path, headers=headers)
    assert answer.status_code == 401
    assert running.harness.mutations() == mutations  # a refused POST rotates nothing
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json() == {"reason": "unauthorized", "detail": "a valid bearer token is required"}


def test_unknown_target_is_401_before_auth_and_404_after(running: Running, client: httpx.Client) -> None:
    """Without the token an unknown target is 401 like any other; with it, 404 unknown_target."""
    with running.client(token=None) as anonymous:
        for method, path in (("GET", "/v1/targets/nope"), ("POST", "/v1/targets/nope/rotate")):
            assert anonymous.request(method, path).status_code == 401
    for method, path in (("GET", "/v1/targets/nope"), ("POST", "/v1/targets/nope/rotate")):
        answer = client.request(method, path)
        assert answer.status_code == 404
        assert answer.json()["reason"] == "unknown_target"
        assert "nope" in answer.json()["detail"]
    unknown_run = client.get("/v1/rotations/0123456789abcdef")
    assert unknown_run.status_code == 404
    assert unknown_run.json()["reason"] == "unknown_rotation"


def test_v1_is_503_trigger_off_without_an_api_token(fakes: Fakes, tmp_path: Path) -> None:
    """Built without ROTATOR_API_TOKEN, every /v1 route is 503 trigger_off, any header; probes still work."""
    with running_daemon(fakes, tmp_path, api_token=None, scheduled=False) as running:
        for token in (None, API_TOKEN, "wrong"):
            with running.client(token=token) as http:
                for method, path in V1_ROUTES:
                    answer = http.request(method, path)
                    assert answer.status_code == 503, (method, path, token)
                    assert answer.json()["reason"] == "trigger_off"
        with running.client(token=None) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 200
    assert running.harness.mutations() == 0


# -- the trigger ----------------------------------------------------------------------------------
def test_rotate_is_202_then_finishes_done_with_a_working_token(
    running: Running, client: httpx.Client
) -> None:
    """POST rotate is 202 with a run id; polled to finished it is done and Infisical holds a live token."""
    before = client.get(f"/v1/targets/{APP}").json()["token_id"]
    answer = trigger(client, APP)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["target"] == APP
    assert accepted["status"] in {"queued", "running", "finished"}
    assert answer.headers["location"] == f"/v1/rotations/{accepted['id']}"
    run = finished(client, accepted["id"])
    assert run["status"] == "finished"
    assert run["outcome"] == "done"
    assert run["failed"] is False
    assert [r["outcome"] for r in run["rotations"]] == ["succeeded"]
    after = client.get(f"/v1/targets/{APP}").json()
    assert after["token_id"] == run["rotations"][0]["new_token_id"] != before
    assert after["last_outcome"] == "succeeded"
    held = running.fakes.infisical.test_only_held_token(CONNECTIONS[0])
    assert running.fakes.gitlab.test_only_accepts(held)
    assert running.fakes.gitlab.test_only_token(after["token_id"]).value == held


def test_rotate_is_409_rotating_while_a_run_is_in_flight(running: Running, client: httpx.Client) -> None:
    """A second POST while the first run's PATCH is held is 409 rotating; another target is still 202."""
    slow = running.fakes.infisical.faults.delay("PATCH *", 2)
    first = trigger(client, APP)
    assert first.status_code == 202, first.text
    assert slow.reached.wait(10)
    second = client.post(f"/v1/targets/{APP}/rotate")
    assert second.status_code == 409
    assert second.json()["reason"] == "rotating"
    assert client.get(f"/v1/targets/{APP}").status_code == 200  # status still answers meanwhile
    other = client.post(f"/v1/targets/{API}/rotate")
    assert other.status_code == 202, other.text
    assert finished(client, first.json()["id"])["outcome"] == "done"
    assert finished(client, other.json()["id"])["outcome"] == "done"
    assert running.held_works(0)
    assert running.held_works(1)


def test_rotate_is_409_drift_on_a_frozen_target(
    running: Running, client: httpx.Client, infisical: httpx.Client
) -> None:
    """After someone else PATCHes the connection, a run freezes the target and POST rotate is 409 drift."""
    held = running.fakes.infisical.test_only_held_token(CONNECTIONS[0])
    assert patch_by_hand(infisical, running.fakes.seed.gitlab_url, CONNECTIONS[0], held).status_code == 200
    noticed = finished(client, trigger(client, APP).json()["id"])
    assert noticed["outcome"] == "failed"
    assert noticed["failed"] is True
    row = client.get(f"/v1/targets/{APP}").json()
    assert row["drift"] is not None
    assert row["drift"]["since"] is not None
    answer = client.post(f"/v1/targets/{APP}/rotate")
    assert answer.status_code == 409
    assert answer.json()["reason"] == "drift"
    assert "--take-over" in answer.json()["detail"]
    assert trigger(client, API).status_code == 202  # only the drifted target is frozen


def test_trigger_is_503_shutting_down_once_the_daemon_drains(running: Running, client: httpx.Client) -> None:
    """After stop() begins, POST rotate is 503 shutting_down and /readyz says draining."""
    assert running.daemon.stop(timedelta(seconds=10))
    answer = client.post(f"/v1/targets/{APP}/rotate")
    assert answer.status_code == 503
    assert answer.json()["reason"] == "shutting_down"
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["draining"]) == (503, True)


# -- status -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_v1_targets_matches_status_json(running: Running, client: httpx.Client) -> None:
    """/v1/targets has the same targets and keys as `rotator status --json`, and /v1/targets/NAME each row."""
    api = client.get("/v1/targets")
    assert api.status_code == 200
    cli = running.harness.run("status", "--json")
    assert cli.code == 0, cli.stderr
    expected = cli.json()
    body = api.json()
    assert set(body) == set(expected)
    assert [set(row) for row in body["targets"]] == [set(row) for row in expected["targets"]]
    assert body["targets"] == expected["targets"]
    for row in body["targets"]:
        assert client.get(f"/v1/targets/{row['target']}").json() == row


def test_a_credential_in_a_connections_instance_url_is_shown_nowhere(fakes: Fakes, tmp_path: Path) -> None:
    """A user:secret@ in instanceUrl fails the target; the secret is in no output, journal or API answer."""
    secret = "s3cret-Pa55word"
    held = fakes.infisical.test_only_held_token(CONNECTIONS[0])
    typed = fakes.seed.gitlab_url.replace("://", f"://deploy:{secret}@")
    fakes.infisical.seed_connection(held, instance_url=typed, name="gitlab-app", connection_id=CONNECTIONS[0])
    with running_daemon(fakes, tmp_path, scheduled=False) as running:
        runs = [running.harness.run(*args) for args in (("run-once",), ("status", "--json"), ("history",))]
        with running.client() as http:
            api = http.get("/v1/targets").text
    assert runs[0].code == 1, runs[0].stderr
    assert "://[REDACTED]@127.0.0.1" in runs[1].json()["targets"][0]["last_error"]
    for text in (api, *(run.stdout + run.stderr for run in runs)):
        assert secret not in text
    for journal in tmp_path.glob("state.db*"):  # the WAL too: a write may not be checkpointed yet
        assert secret.encode() not in journal.read_bytes()


def test_an_upstream_message_is_text_in_the_api_answers(fakes: Fakes, tmp_path: Path) -> None:
    """Infisical's forged message in last_error and a run's detail: escapes, no raw control character."""
    forged = "refused\n2026-01-01T00:00:00Z app-deploy: succeeded\r\x1b[2J\u202e"
    shown = r"refused\n2026-01-01T00:00:00Z app-deploy: succeeded\r\x1b[2J\u202e"
    with running_daemon(fakes, tmp_path) as running, running.client() as http:
        fakes.infisical.faults.fail(PATCH, 400, body={"message": forged})
        run = finished(http, trigger(http, "app-deploy").json()["id"])
        row = http.get("/v1/targets/app-deploy").json()
    assert shown in row["last_error"]
    assert shown in run["detail"]
    assert [c for text in (row["last_error"], run["detail"]) for c in text if not c.isprintable()] == []


def test_a_trigger_queued_longer_than_a_check_interval_still_runs(fakes: Fakes, tmp_path: Path) -> None:
    """One worker busy for 3 s, checks every 1 s: the queued trigger runs late, never is dropped."""
    with running_daemon(fakes, tmp_path, check_interval="1s", workers=1) as running, running.client() as http:
        slow = fakes.infisical.faults.delay(PATCH, 3.0)
        first = http.post(f"/v1/targets/{APP}/rotate")
        assert first.status_code == 202
        assert slow.reached.wait(10)
        queued = http.post("/v1/targets/api-deploy/rotate")
        assert queued.status_code == 202

        def finished(answer: httpx.Response) -> Callable[[], bool]:
            url = f"/v1/rotations/{answer.json()['id']}"
            return lambda: bool(http.get(url).json()["status"] == "finished")

        for answer in (first, queued):
            wait_until(finished(answer), 30)
        # Its lock was released: the target can be triggered again.
        again = http.post("/v1/targets/api-deploy/rotate")
        assert again.status_code == 202
        wait_until(finished(again), 30)
        assert running.held_works(1)


def test_pending_revokes_and_build_info_are_scraped(fakes: Fakes, tmp_path: Path) -> None:
    """rotator_pending_revokes{target}: 1 in the grace, 0 once revoked; rotator_build_info{version} is 1."""
    from rotator import __version__  # noqa: PLC0415 - the package's version, as the scrape must show it

    def pending(running: Running) -> dict[str, float]:
        with running.client(token=None) as http:
            scrape = http.get("/metrics").text
        assert samples(scrape, "rotator_build_info") == [({"version": str(__version__)}, 1.0)]
        return {labels["target"]: value for labels, value in samples(scrape, "rotator_pending_revokes")}

    with running_daemon(fakes, tmp_path, grace="1h", scheduled=False) as idle:
        assert pending(idle) == {APP: 0, API: 0}  # never rotated: nothing retired yet
    with running_daemon(fakes, tmp_path, grace="1h") as rotated:
        # The first pass rotated both targets: each adopted token waits out its hour of grace.
        assert pending(rotated) == {APP: 1, API: 1}
    with running_daemon(fakes, tmp_path, grace="1h", clock_offset="61m") as later:
        wait_until(lambda: pending(later) == {APP: 0, API: 0}, what="the revokes past grace")
        assert later.fakes.seed.adopt_token_ids[0] not in later.harness.active_tokens(0)


class _JournalDown:
    """A daemon whose journal's database cannot be reached: every read behind /v1 fails."""

    def _down(self) -> JournalUnavailableError:
        return JournalUnavailableError(
            "state.url", "cannot reach the journal at 127.0.0.1:9 (connection refused)"
        )

    def status(self) -> dict[str, Any]:
        """Fail as the journal does."""
        raise self._down()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Not ready."""
        return False, {"ready": False}

    def trigger(self, name: str) -> Any:  # noqa: ANN401, ARG002 - as the Service protocol
        """Fail as the journal does."""
        raise self._down()

    def run(self, run_id: str) -> Any:  # noqa: ANN401, ARG002 - as the Service protocol
        """Fail as the journal does."""
        raise self._down()


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/targets/app-deploy/rotate"), ("GET", "/v1/rotations/abc"), ("GET", "/v1/targets")],
)
def test_an_unreachable_journal_is_503_journal_unavailable_not_500(method: str, path: str) -> None:
    """Behind /v1, a journal that cannot be reached answers 503 journal_unavailable with Retry-After."""
    app = create_app(_JournalDown(), Metrics().registry, Secret(API_TOKEN))
    server = Server(app, "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as http:
            answer = http.request(method, path)
    finally:
        server.stop()
    assert (answer.status_code, answer.json()["reason"]) == (503, "journal_unavailable"), answer.text
    assert "127.0.0.1:9" in answer.json()["detail"]
    assert answer.headers["retry-after"] == "30"
