"""The daemon's HTTP face: health, metrics, status and the authenticated rotation trigger.

``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json`` are open (probes and Prometheus
carry no credential). Every ``/v1/*`` route needs ``Authorization: Bearer <ROTATOR_API_TOKEN>``,
compared in constant time; without that variable the daemon still rotates on schedule but answers
503 on ``/v1/*``, so an unauthenticated trigger can never be switched on by omission. The
credential is checked before anything else, so an unauthenticated caller cannot even learn which
targets exist.
"""

import hmac
import socket
import threading

from collections.abc import Callable
from typing import Annotated, Any, Literal, Protocol

import uvicorn

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from pydantic import BaseModel, ConfigDict, RootModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from rotator.core.errors import JournalUnavailableError
from rotator.core.model import KEPT_REQUESTS
from rotator.core.redact import redact_tree
from rotator.core.secret import Secret
from rotator.doors import readmodel


class Service(Protocol):
    """What the endpoints need from the daemon (:class:`rotator.doors.daemon.Daemon`)."""

    def status(self) -> dict[str, Any]:
        """``status --json``'s document."""

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the daemon is ready, and the body saying why."""

    def trigger(self, name: str) -> Any:  # noqa: ANN401 - TriggeredRun | Refusal, read by shape
        """Queue a forced rotation, or say why not."""

    def run(self, run_id: str) -> Any:  # noqa: ANN401 - TriggeredRun | None
        """A trigger request by id."""


# -- the documented shapes (the OpenAPI document and schemathesis check answers against them) ----
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(_Model):
    """An error: ``reason`` is a fixed word for programs, ``detail`` a sentence for people."""

    reason: str
    detail: str


class Health(_Model):
    """The process is alive."""

    status: Literal["ok"]


class CredentialHealth(_Model):
    """One of rotator's own credentials: refused at its last use or not, and when it expires."""

    credential: Literal["ok", "refused"]
    expires_at: str | None


class Readiness(_Model):
    """Ready unless draining, the journal is unreachable, or an upstream refused rotator's credential."""

    ready: bool
    journal: str
    gitlab: CredentialHealth
    infisical: CredentialHealth
    draining: bool


# /v1/targets serves the status read model itself: its schemas are derived from those classes.
class Status(RootModel[readmodel.Status]):
    """``/v1/targets``' document, validated against the read model: a field it does not declare is refused."""


class TargetStatus(RootModel[readmodel.TargetStatus]):
    """One row of ``/v1/targets``, validated like :class:`Status`."""


class RotationRef(_Model):
    """A journal rotation a triggered run performed."""

    id: str
    outcome: str
    step: str
    new_token_id: int | None


class TriggeredRun(_Model):
    """A rotation requested over HTTP: queued, running, finished or cancelled, and its outcome.

    Requests live in the journal: every replica sharing it answers for every request, and one
    whose replica died is carried out by another (once: a rotation it planned is resumed, never
    planned again). ``coalesced``: the request came within ``daemon.min_trigger_interval`` of the
    target's last forced rotation, so it started nothing and this is the request that planned
    that rotation, whichever replica took it (or, for a rotation no request planned, such as
    `rotator rotate`'s, one known by the rotation's id); ``next_trigger_at`` is when a trigger
    starts a rotation again (at most one interval away). A queued request is also coalesced, when
    it starts, if another replica forced a rotation while it waited: it keeps its own id, and
    ``outcome`` and ``rotations`` are that rotation's. ``rotations`` lists only the rotations
    planned for the request, or the one it was coalesced onto.
    """

    id: str
    target: str
    status: Literal["queued", "running", "finished", "cancelled"]
    requested_at: str | None
    started_at: str | None
    finished_at: str | None
    outcome: str | None
    failed: bool | None
    detail: str | None
    rotations: list[RotationRef]
    coalesced: bool = False
    next_trigger_at: str | None = None


_bearer = HTTPBearer(auto_error=False, description="ROTATOR_API_TOKEN")
_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    503: {
        "model": Problem,
        "description": "ROTATOR_API_TOKEN is not set, the daemon is stopping, or the journal is unreachable",
    },
}


def _shown(document: Any) -> Any:  # noqa: ANN401 - a JSON document, passed through
    # Defence in depth: whatever the service hands over passes the one redaction before it is
    # served (a target's configured name, which routes look rows up by, stays as it is).
    return redact_tree(document, keep={"target"})


def _problem(status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status, detail={"reason": reason, "detail": detail}, headers=headers)


def create_app(service: Service, registry: CollectorRegistry, api_token: Secret | None) -> FastAPI:
    """The ASGI application for ``service``; ``api_token`` guards ``/v1/*`` (``None``: trigger off)."""
    from rotator import __version__  # noqa: PLC0415 - metadata lookup, once per app

    app = FastAPI(
        title="rotator",
        version=str(__version__),
        description="Health, metrics, status and the rotation trigger of `rotator daemon`.",
        # No Swagger UI: it would load scripts from a CDN; /openapi.json is the document.
        docs_url=None,
        redoc_url=None,
    )

    # Starlette's class, which FastAPI's subclasses: the router's own 404 and 405 come through too.
    @app.exception_handler(StarletteHTTPException)
    async def _as_problem(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        # One error shape everywhere (FastAPI's default nests it under "detail").
        body = (
            error.detail
            if isinstance(error.detail, dict)
            else {"reason": "http_error", "detail": str(error.detail)}
        )
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(JournalUnavailableError)
    async def _journal_unavailable(_request: Request, error: JournalUnavailableError) -> JSONResponse:
        # A read of the journal behind a /v1 answer failed (the database is down or refuses):
        # the caller may retry, here or on another replica; a 500 would say rotator is broken.
        body = {"reason": "journal_unavailable", "detail": str(error)}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "30"})

    _health_routes(app, service, registry)
    _v1_routes(app, service, api_token)
    return app


def _health_routes(app: FastAPI, service: Service, registry: CollectorRegistry) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> Health:
        """The process is alive (its HTTP thread answers)."""
        return Health(status="ok")

    @app.get("/readyz", tags=["health"], responses={503: {"model": Readiness, "description": "not ready"}})
    def readyz(response: Response) -> Readiness:
        """Ready unless draining (stopping), the journal is unreachable, or our credential was refused."""
        ready, body = service.readiness()
        response.status_code = 200 if ready else 503
        return Readiness.model_validate(body)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
    )
    def metrics() -> Response:
        """Prometheus metrics (see the README for the names and an alert rule)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _authorizer(api_token: Secret | None) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """The dependency guarding ``/v1/*``: 503 with no token configured, 401 unless it matches."""

    def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if api_token is None:
            raise _problem(503, "trigger_off", "the daemon was started without ROTATOR_API_TOKEN")
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, api_token.reveal().encode()):
            raise _problem(
                401, "unauthorized", "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )

    return authorized


def _v1_routes(app: FastAPI, service: Service, api_token: Secret | None) -> None:
    guarded = [Depends(_authorizer(api_token))]

    @app.get("/v1/targets", tags=["targets"], dependencies=guarded, responses=_UNAUTHORIZED)
    def targets() -> readmodel.Status:
        """Every target: the same data as `rotator status --json`."""
        return Status.model_validate(_shown(service.status())).root

    @app.get(
        "/v1/targets/{name}",
        tags=["targets"],
        dependencies=guarded,
        responses={**_UNAUTHORIZED, 404: {"model": Problem, "description": "no such target"}},
    )
    def target(name: str) -> readmodel.TargetStatus:
        """One target, as `rotator status --json` shows it."""
        for row in service.status()["targets"]:
            if row["target"] == name:
                return TargetStatus.model_validate(_shown(row)).root
        raise _problem(404, "unknown_target", f"no target named {name!r}")

    @app.post(
        "/v1/targets/{name}/rotate",
        tags=["targets"],
        status_code=202,
        dependencies=guarded,
        responses={
            **_UNAUTHORIZED,
            202: {
                "description": "queued; or, with coalesced true, a forced rotation finished less than"
                " daemon.min_trigger_interval ago: nothing started, this is that rotation's request",
            },
            404: {"model": Problem, "description": "no such target"},
            409: {
                "model": Problem,
                "description": "a run of this target is in flight, or it is frozen by drift",
            },
        },
    )
    def rotate(name: str, response: Response) -> TriggeredRun:
        """Rotate a target now (forced); poll the returned id at /v1/rotations/{id}.

        Within `daemon.min_trigger_interval` (default 1m) of the target's last forced rotation, as
        the shared journal records it, nothing starts: the answer is that rotation's request with
        `coalesced: true` and `next_trigger_at`, whether it succeeded or failed.
        """
        outcome = service.trigger(name)
        if hasattr(outcome, "reason"):
            raise _problem(outcome.status, outcome.reason, _shown(outcome.detail))
        response.headers["Location"] = f"/v1/rotations/{outcome.id}"
        return TriggeredRun.model_validate(_shown(outcome.as_json()))

    @app.get(
        "/v1/rotations/{run_id}",
        tags=["targets"],
        dependencies=guarded,
        responses={**_UNAUTHORIZED, 404: {"model": Problem, "description": "no such rotation request"}},
    )
    def rotation(run_id: str) -> TriggeredRun:
        """A triggered rotation's progress and outcome, from the journal (any replica sharing it answers)."""
        run = service.run(run_id)
        if run is None:
            raise _problem(
                404,
                "unknown_rotation",
                f"no rotation request {run_id!r} (the last {KEPT_REQUESTS} ended ones are kept)",
            )
        return TriggeredRun.model_validate(_shown(run.as_json()))


class Server:
    """uvicorn on a socket bound up front (so the port is known, and a bind error is ours to word).

    It runs in a thread of its own: uvicorn installs signal handlers only on the main thread, and
    the daemon wants SIGTERM for itself, to drain rotations before the server goes.
    """

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        """Bind ``host:port`` now (port 0: any free port); OSError if it cannot."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.socket]}, name="http", daemon=True
        )

    @property
    def url(self) -> str:
        """Where the server listens, as a URL."""
        host, port = self.socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the requests in progress (at most ``timeout`` seconds) and close the socket."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self.socket.close()
