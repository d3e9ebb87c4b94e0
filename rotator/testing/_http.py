"""The HTTP plumbing shared by the fake servers: routing, fault injection, call counting.

Each fake is a real ``ThreadingHTTPServer`` on loopback speaking HTTP/1.1 with keep-alive, so the
product's real clients (python-gitlab over requests, httpx) talk to it unchanged. A subclass of
:class:`FakeServer` registers routes (``"GET /api/v4/projects/:id"``) and supplies the canned error
bodies of the server it imitates; this module knows nothing about GitLab or Infisical.

Every request to a registered route is counted under its route name and User-Agent before any
fault is applied, so tests and benchmarks can count what a client sent, including requests that
were dropped. Routes under ``/_fake/`` are the test-only control API and are never counted.

``GET /_fake/test-hooks?challenge=C`` answers ``{"proof": hex(HMAC-SHA256(key, C))}`` with the
fake's :attr:`FakeServer.test_hooks_key`: how rotator tells a fake it may arm its test hooks for
(``ROTATOR_TEST_HOOKS`` holds the key) from a real server that happens to be on loopback, which
answers 404. The key itself never crosses the wire.

Each counted call also notes whether it carried, in ``PRIVATE-TOKEN``, ``Authorization`` or
``Cookie``, a credential that one of the server's :attr:`FakeServer.strangers` issued (the other
upstream: an Infisical bearer at GitLab, a GitLab token at Infisical). :func:`start_fakes` makes the
pair strangers to each other; a client that sends one upstream's credential to the other shows up
in :meth:`FakeServer.test_only_stranger_credentials`.
"""

import contextlib
import hashlib
import hmac
import http.client
import io
import json
import re
import secrets
import socket
import struct
import sys
import threading
import urllib.parse

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from rotator.testing._clock import FakeClock
from rotator.testing._faults import Fault, Faults
from rotator.testing._wire import by_name, parse_headers, read_header_lines


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request; ``path`` is still percent-encoded, as routing needs it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client: str
    host: str
    args: dict[str, str] = field(default_factory=dict)  # path parameters, percent-decoded

    @property
    def user_agent(self) -> str:
        """The User-Agent header, or an empty string."""
        return self.headers.get("user-agent", "")

    def json(self) -> Any:  # noqa: ANN401 - any JSON value
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.body) if self.body else None

    def form(self) -> dict[str, Any]:
        """Query string and body merged, as a Rails/Grape server sees its params."""
        params: dict[str, Any] = {}
        for key, values in self.query.items():
            params[key.removesuffix("[]")] = values if key.endswith("[]") else values[-1]
        ctype = self.headers.get("content-type", "")
        if self.body and "json" in ctype:
            parsed = self.json()
            if isinstance(parsed, dict):
                params.update(parsed)
        elif self.body:
            for key, values in urllib.parse.parse_qs(self.body.decode(), keep_blank_values=True).items():
                params[key.removesuffix("[]")] = values if key.endswith("[]") else values[-1]
        return params


@dataclass(slots=True)
class Response:
    """What a handler answers; ``body`` is JSON-able, or ``str``/``bytes`` sent as-is."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        """The body bytes and their content type."""
        if self.body is None:
            return b"", "application/json"
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/plain")
        return json.dumps(self.body, separators=(",", ":")).encode(), "application/json"


class HTTPError(Exception):
    """Raised by a handler to answer with ``response`` (an error status and body)."""

    def __init__(self, response: Response) -> None:
        """Carry ``response`` up to the dispatcher."""
        super().__init__(response.status)
        self.response = response


Handler = Callable[[Request], Response]
#: How a fault keeps a request waiting for some seconds (see :meth:`FakeServer.dispatch`).
Hold = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class Route:
    """A method, a path template with ``:name`` segments, and its handler."""

    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str]

    @property
    def name(self) -> str:
        """The route's name, used for counting and fault matching."""
        return f"{self.method} {self.template}"

    @classmethod
    def build(cls, method: str, template: str, handler: Handler) -> "Route":
        """Compile ``template`` into a matcher; ``:name`` matches one encoded segment."""
        regex = re.sub(r":(\w+)", r"(?P<\1>[^/]+)", re.escape(template).replace(r"\:", ":"))
        return cls(method, template, handler, re.compile(f"^{regex}$"))


@dataclass(slots=True)
class Call:
    """One request the fake received on a registered route (logged on arrival)."""

    route: str
    path: str
    user_agent: str
    #: The request's ``name`` parameter, if any: tells a retried token create from a new one.
    name: str | None = None
    #: The status answered, once answered; ``None`` while in flight or if the connection dropped.
    status: int | None = None
    #: The stranger whose credential the request carried (its ``upstream`` name); must stay None.
    credential_of: str | None = None


class FixedWindowLimiter:
    """A fixed-window request counter per key, on the fake clock.

    @fastify/rate-limit (Infisical) and Rack::Attack (GitLab) both count in fixed windows.
    """

    def __init__(self, limit: int, clock: FakeClock, window: timedelta = timedelta(minutes=1)) -> None:
        """Allow ``limit`` requests per key per ``window``."""
        self.limit = limit
        self._clock = clock
        self._window = window.total_seconds()
        self._lock = threading.Lock()
        self._current = 0  # the window ``_counts`` counts in
        self._counts: dict[str, int] = {}

    def hit(self, key: str) -> tuple[bool, int, float]:
        """Count one request; return (allowed, remaining, seconds until the window resets)."""
        now = self._clock.now().timestamp()
        window = int(now // self._window)
        reset_in = (window + 1) * self._window - now
        with self._lock:
            if window != self._current:  # a new window: every key starts again from zero
                self._current, self._counts = window, {}
            count = self._counts[key] = self._counts.get(key, 0) + 1
        return count <= self.limit, max(0, self.limit - count), reset_in


class FakeServer:
    """A fake upstream on 127.0.0.1; subclasses register routes and canned error bodies."""

    #: Set by subclasses: the upstream's name in logs and ``/_fake/`` answers.
    upstream: ClassVar[str] = "fake"

    def __init__(self, clock: FakeClock | None = None, *, test_hooks_key: str | None = None) -> None:
        """Create the server (not yet listening); see :meth:`start`.

        ``test_hooks_key`` (random if not given) is what ``/_fake/test-hooks`` proves knowledge of.
        """
        self.clock = clock or FakeClock()
        self.test_hooks_key = test_hooks_key or secrets.token_urlsafe(24)
        self.faults = Faults()
        self.lock = threading.RLock()  # guards the fake's state; handlers run under it
        self._routes: list[Route] = []
        self._calls: list[Call] = []
        self._calls_lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        #: Other fakes whose credentials must never arrive here (see the module docstring).
        self.strangers: tuple[FakeServer, ...] = ()
        self._register_control_routes()

    # ---- routing ------------------------------------------------------------------------------

    def route(self, method: str, template: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` on ``template``; first registration wins."""
        self._routes.append(Route.build(method, template, handler))

    @property
    def route_names(self) -> list[str]:
        """Every registered route name, control routes excluded."""
        return [r.name for r in self._routes if not r.template.startswith("/_fake/")]

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self._routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route, {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
        return None

    # ---- hooks for subclasses -----------------------------------------------------------------

    def canned_error(self, status: int, shape: str | None, request: Request) -> Response:
        """The body and headers this upstream sends with ``status`` (overridden per server)."""
        del shape, request
        return Response(status, {"message": HTTPStatus(status).phrase})

    def not_found(self, request: Request) -> Response:
        """The answer for a path no route matches."""
        return Response(404, {"message": f"no route for {request.method} {request.path}"})

    def internal_error(self, request: Request) -> Response:
        """The answer when a handler raises unexpectedly."""
        return self.canned_error(500, None, request)

    def owns_credential(self, value: str) -> bool:
        """Whether ``value`` is a credential this server issued (overridden per server)."""
        del value
        return False

    # ---- counting -----------------------------------------------------------------------------

    def calls(self, route: str | None = None, *, user_agent: str | None = None) -> list[Call]:
        """The calls received, optionally only of ``route`` and with a User-Agent prefix."""
        with self._calls_lock:
            return [
                c
                for c in self._calls
                if (route is None or c.route == route)
                and (user_agent is None or c.user_agent.startswith(user_agent))
            ]

    def call_counts(self, *, user_agent: str | None = None) -> dict[str, int]:
        """Calls received per route name."""
        return dict(Counter(c.route for c in self.calls(user_agent=user_agent)))

    def test_only_stranger_credentials(self) -> list[Call]:
        """TEST ONLY: the calls that carried a stranger's credential (none, if all is well)."""
        return [c for c in self.calls() if c.credential_of is not None]

    def reset_calls(self) -> None:
        """Forget every counted call."""
        with self._calls_lock:
            self._calls.clear()

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        if self._httpd is None:
            msg = f"the fake {self.upstream} is not started"
            raise RuntimeError(msg)
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "FakeServer":
        """Listen on ``host:port`` (0: an ephemeral port) in a background thread."""
        server = self

        class _Handler(_RequestHandler):
            fake = server

        self._stopping.clear()
        self._httpd = _Server((host, port), _Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-{self.upstream}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and release hung requests."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            # A stopped server must not keep answering on clients' pooled keep-alive connections.
            self._httpd.close_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextmanager
    def refusing(self) -> Iterator["FakeServer"]:
        """Refuse connections for a ``with`` block, keeping all state; then listen again.

        Nothing listens on the port meanwhile: an upstream that is down, as a client sees it. The
        port stays bound (not listening) by a placeholder socket, so no other socket can take it
        meanwhile: a client's ephemeral port, or a client connecting to itself (TCP's simultaneous
        open, which Linux allows when a connect to a free port picks that very port), would
        otherwise make listening again fail with "Address already in use".
        """
        if self._httpd is None:
            msg = f"the fake {self.upstream} is not started"
            raise RuntimeError(msg)
        host, port = self._httpd.server_address[:2]
        FakeServer.stop(self)  # not a subclass's stop: that would also release its own clients
        placeholder = _hold_port(str(host), int(port))
        try:
            yield self
        finally:
            if placeholder is not None:
                placeholder.close()
            FakeServer.start(self, str(host), int(port))

    @contextmanager
    def running(self) -> Iterator["FakeServer"]:
        """Start for the duration of a ``with`` block."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # ---- dispatch -----------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether the server accepts connections now (started, and not stopped or refusing)."""
        return self._httpd is not None and not self._stopping.is_set()

    def dispatch(self, request: Request, hold: Hold | None = None) -> Response | None:
        """Handle one request; ``None`` means: close the connection without answering.

        ``hold(seconds)`` is how a ``latency`` or ``hang`` fault keeps the request waiting: by
        default it waits for real (over loopback the client's own timeout then fires); the
        in-process transports (:mod:`rotator.testing.transport`) pass one that only adds the
        seconds up, and decide from the total and the client's timeout what the client sees.
        """
        hold = hold or self._hold
        matched = self._match(request.method, request.path)
        if matched is None:
            return self.not_found(request)
        route, args = matched
        request = Request(**{**_fields(request), "args": args})
        control = route.template.startswith("/_fake/")
        if not control:
            call = Call(route.name, request.path, request.user_agent, _name(request))
            call.credential_of = next(
                (
                    stranger.upstream
                    for stranger in self.strangers
                    for value in _credential_values(request.headers)
                    if stranger.owns_credential(value)
                ),
                None,
            )
            with self._calls_lock:
                self._calls.append(call)
            refused, headers = self.gate(request)
            response = refused or self._faulty(route, request, hold)
            if response is not None:
                response.headers = {**headers, **response.headers}
                call.status = response.status
            return response
        return self._run(route, request)

    def gate(self, request: Request) -> tuple[Response | None, dict[str, str]]:
        """Run front-door checks (a rate limiter) before faults and handlers.

        Returns an answer that refuses the request, or ``None``, and headers to add to whatever
        is answered.
        """
        del request
        return None, {}

    def _hold(self, seconds: float) -> None:
        """Over loopback, a held request really waits (a stopping server releases it early)."""
        self._stopping.wait(seconds)

    def _faulty(self, route: Route, request: Request, hold: Hold) -> Response | None:
        delay = self.faults.latency_for(route.name)
        if delay:
            hold(delay)
        fault = self.faults.take(route.name)
        if fault is not None:
            outcome = self._apply_fault(fault, route, request, hold)
            if outcome is not _CONTINUE:
                return outcome  # type: ignore[return-value]
        return self._run(route, request)

    def _apply_fault(self, fault: Fault, route: Route, request: Request, hold: Hold) -> object:
        if fault.kind == "latency":
            fault.reached.set()
            hold(fault.seconds)
            return _CONTINUE
        if fault.kind == "redirect":
            fault.reached.set()
            # A bare host stands for a moved server (same path); a path of its own, for a sign-in page.
            moved = not urllib.parse.urlsplit(fault.location).path.strip("/")
            target = fault.location.rstrip("/") + request.path + _query(request) if moved else fault.location
            return Response(fault.status, "", {"Location": target, "Content-Type": "text/html"})
        if fault.kind == "foreign_next":
            answer = self._run(route, request)
            fault.reached.set()
            query = urllib.parse.urlencode({**{k: v[-1] for k, v in request.query.items()}, "page": "2"})
            target = f"{fault.location.rstrip('/')}{request.path}?{query}"
            kept = [link for link in _links(answer.headers.get("Link", "")) if 'rel="next"' not in link]
            answer.headers["Link"] = ", ".join([f'<{target}>; rel="next"', *kept])
            return answer
        if fault.kind == "fail":
            fault.reached.set()
            canned = self.canned_error(fault.status, fault.shape, request)
            body = canned.body if fault.body is None else fault.body
            return Response(fault.status, body, {**canned.headers, **fault.headers})
        if fault.kind in {"drop_after", "hang_after"}:
            self._run(route, request)
        fault.reached.set()
        if fault.kind in {"hang", "hang_after"}:
            hold(fault.seconds)
        return None  # drop_before, drop_after, and a hang that has run its course

    def _run(self, route: Route, request: Request) -> Response:
        try:
            with self.lock:
                return route.handler(request)
        except HTTPError as error:
            return error.response
        except Exception:  # noqa: BLE001 - a fake answers 500 as the real server would
            return self.internal_error(request)

    # ---- the test-only control API ------------------------------------------------------------

    def _register_control_routes(self) -> None:
        self.route("GET", "/_fake/calls", self._control_calls)
        self.route("DELETE", "/_fake/calls", self._control_reset_calls)
        self.route("GET", "/_fake/faults", self._control_list_faults)
        self.route("POST", "/_fake/faults", self._control_add_fault)
        self.route("DELETE", "/_fake/faults", self._control_clear_faults)
        self.route("GET", "/_fake/clock", self._control_clock)
        self.route("POST", "/_fake/clock", self._control_move_clock)
        self.route("GET", "/_fake/test-hooks", self._control_test_hooks)

    def _control_test_hooks(self, request: Request) -> Response:
        challenge = request.query.get("challenge", [""])[-1]
        # A fresh random challenge per check; a bounded one keeps this from being a general oracle.
        if not 16 <= len(challenge) <= 128:
            return Response(400, {"message": "challenge must be 16 to 128 characters"})
        proof = hmac.new(self.test_hooks_key.encode(), challenge.encode(), hashlib.sha256).hexdigest()
        return Response(200, {"proof": proof})

    def _control_calls(self, request: Request) -> Response:
        user_agent = request.query.get("user_agent", [None])[-1]
        return Response(200, {"counts": self.call_counts(user_agent=user_agent)})

    def _control_reset_calls(self, _request: Request) -> Response:
        self.reset_calls()
        return Response(204)

    def _control_list_faults(self, _request: Request) -> Response:
        faults = [
            {"route": f.route, "kind": f.kind, "status": f.status, "times": f.times}
            for f in self.faults.pending()
        ]
        return Response(200, {"faults": faults})

    def _control_add_fault(self, request: Request) -> Response:
        spec = request.json()
        if not isinstance(spec, dict) or "route" not in spec or "kind" not in spec:
            return Response(400, {"message": "a fault needs at least 'route' and 'kind'"})
        if "latency_all" in spec:
            self.faults.set_latency(spec["route"], float(spec["latency_all"]))
            return Response(201, {"ok": True})
        try:
            self.faults.add(
                Fault(
                    route=spec["route"],
                    kind=spec["kind"],
                    status=int(spec.get("status", 500)),
                    shape=spec.get("shape"),
                    body=spec.get("body"),
                    headers=dict(spec.get("headers", {})),
                    seconds=float(spec.get("seconds", 0.0)),
                    times=spec.get("times", 1),
                    location=str(spec.get("location", "")),
                ),
            )
        except (TypeError, ValueError) as error:
            return Response(400, {"message": str(error)})
        return Response(201, {"ok": True})

    def _control_clear_faults(self, _request: Request) -> Response:
        self.faults.clear()
        return Response(204)

    def _control_clock(self, _request: Request) -> Response:
        return Response(200, {"now": self.clock.now().isoformat()})

    def _control_move_clock(self, request: Request) -> Response:
        spec = request.json() or {}
        self.clock.advance(timedelta(seconds=float(spec.get("advance_seconds", 0))))
        return Response(200, {"now": self.clock.now().isoformat()})


_CONTINUE = object()


def _hold_port(host: str, port: int) -> socket.socket | None:
    """A socket bound to ``host:port`` but not listening (connections are refused), or ``None``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held = socket.socket(family, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server had: TIME_WAIT is fine
    try:
        held.bind((host, port))
    except OSError:  # taken in the instant since the server closed: listening again will say so
        held.close()
        return None
    return held


def _query(request: Request) -> str:
    query = urllib.parse.urlencode(request.query, doseq=True)
    return f"?{query}" if query else ""


def _links(header: str) -> list[str]:
    """The entries of a ``Link`` header (URLs in the fakes' headers hold no ``, ``)."""
    return [part.strip() for part in header.split(", ") if part.strip()]


def _name(request: Request) -> str | None:
    try:
        name = request.form().get("name")
    except ValueError:  # a malformed body: the handler will answer it
        return None
    return name if isinstance(name, str) else None


def _credential_values(headers: dict[str, str]) -> list[str]:
    """What may be a credential: ``PRIVATE-TOKEN``, ``Authorization`` after its scheme, ``Cookie``."""
    values = [headers.get("private-token", "")]
    values.append(headers.get("authorization", "").rpartition(" ")[2])
    values += [part.partition("=")[2].strip() for part in headers.get("cookie", "").split(";")]
    # Only ASCII can be a credential (and compare_digest takes nothing else).
    return [value for value in values if value and value.isascii()]


def _fields(request: Request) -> dict[str, Any]:
    return {name: getattr(request, name) for name in Request.__slots__}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:  # noqa: ANN401 - socketserver's types
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:  # noqa: ANN401 - socketserver's types
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ANN401 - socketserver's types
        """Stay quiet about a client that went away (a reset, a broken pipe); report anything else.

        A client killed mid-connection (a crash test's SIGKILL, a timeout's abandoned socket) resets
        its connections: a real server logs nothing for that, and socketserver's traceback on the
        process's standard error would land in whatever else is writing there (an in-process run's
        captured output, a demo's terminal).
        """
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_open_connections(self) -> None:
        with self._open_lock:
            open_sockets, self._open = list(self._open), set()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _RequestHandler(BaseHTTPRequestHandler):
    """Turns http.server's callbacks into :meth:`FakeServer.dispatch` calls."""

    fake: ClassVar[FakeServer]
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every response (measured with bench/fakes.py).
    disable_nagle_algorithm = True
    # A buffered wfile: the status line, the headers and the body leave in one send (http.server
    # flushes after each request, socketserver when the connection ends), where unbuffered they
    # took two system calls and usually two segments per response.
    wbufsize = io.DEFAULT_BUFFER_SIZE
    server_version = "fake"
    sys_version = ""

    #: The request's headers by lower-cased name: the last of a repeated one, and the first
    #: (what ``self.headers.get`` answers, without its walk over every header).
    lowered: dict[str, str]
    first: dict[str, str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Stay quiet: the fakes run inside test processes and demos."""

    def parse_request(self) -> bool:
        """http.server's own, with the headers read by :mod:`rotator.testing._wire`.

        A request line other than ``METHOD TARGET HTTP/1.1`` (or ``1.0``) goes to http.server's
        parser unchanged, so its answers to malformed requests stay what they were.
        """
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")  # type: ignore[attr-defined]
        words = line.split()
        if not line.isascii() or len(words) != 3 or words[2] not in {"HTTP/1.1", "HTTP/1.0"}:
            parsed = super().parse_request()
            if parsed:
                self.lowered, self.first = by_name(self.headers.items())
            return parsed
        self.requestline, (self.command, path, self.request_version) = line, words
        self.close_connection = self.request_version == "HTTP/1.0"
        # gh-87389, as http.server does: a path starting with // could pass for a host.
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        try:
            lines = read_header_lines(self.rfile)  # type: ignore[arg-type]
            self.headers, self.lowered, self.first = parse_headers(lines, self.MessageClass)
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False
        connection = self.first.get("connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        expect = self.first.get("expect", "").lower()
        if expect == "100-continue" and self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def handle_expect_100(self) -> bool:
        """http.server's own, with ``100 Continue`` sent at once: the client waits for it to send the body."""
        answered = super().handle_expect_100()
        self.wfile.flush()
        return answered

    def _handle(self) -> None:
        if "chunked" in self.first.get("transfer-encoding", "").lower():
            self.send_error(411, "Length Required")  # the fakes read Content-Length bodies only
            return
        length = int(self.first.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers=self.lowered,
            body=body,
            client=str(self.client_address[0]),
            host=self.first.get("host", ""),
        )
        response = self.fake.dispatch(request)
        if response is None:
            self.close_connection = True
            # RST rather than FIN where the platform allows, so the client sees a dropped
            # connection at once instead of waiting on a half-closed socket.
            with contextlib.suppress(OSError):  # a platform without SO_LINGER just closes
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        payload, ctype = response.encode()
        self.send_response(response.status)
        headers = {"Content-Type": ctype, **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815 - http.server's names
