"""Several ``rotator daemon`` replicas on one PostgreSQL journal, the fakes in their own process.

:class:`Fleet` writes one config per replica (the same targets; its own ``application_name``, and
a database address that may go through a :class:`~tests.ha.pgproxy.Proxy`), starts, kills and
restarts replicas, runs ``rotator run-once`` beside them, and checks the fault campaign's
invariants from the fakes' and the journal's truth (:meth:`Fleet.check`):

- no lockout: every connection holds a token GitLab accepts;
- no leak: no credential or token value in any replica's output, any command's, or the journal;
- at most 1 + pending revokes + possibly-held (+ an unfinished rotation's) active tokens per target;
- no stranger's credential, no rotate route, no reuse of a revoked token.

"Rotated exactly once" is each case's own assertion (:meth:`Fleet.succeeded`, :meth:`Fleet.creates`),
since what counts once depends on the case. Every request the fakes log names the replica that
sent it (:mod:`tests.ha.fakes_host`), which is how a case proves what a replica did not send.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import yaml

from rotator.core.ports import Journal
from rotator.doors import report, wiring
from tests.cli_harness import SCALE, SLEEP_SCALE, Result, finish_output
from tests.ha.fakes_host import FakesHost
from tests.ha.pgproxy import Proxy


if TYPE_CHECKING:
    from rotator.doors.config import Config


API_TOKEN = "ha-test-api-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
#: The replicas' names (each its own credentials at the fakes) and the command line's.
REPLICAS = ("r0", "r1", "r2", "r3")
CLI = "cli"
CALLERS = (*REPLICAS, CLI)
CREATE = "POST /api/v4/projects/:id/access_tokens"
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"
CONNECTION = "GET /api/v1/app-connections/gitlab/:connectionId"
SELF = "GET /api/v4/personal_access_tokens/self"
DELETE = "DELETE /api/v4/projects/:id/access_tokens/:token_id"
UNLIMITED = 1_000_000
#: The requests that act on a target: what only its lease holder may send. (Reads are not in it:
#: a daemon reads the first target's connection at start, without a lease, to learn its own
#: Infisical token's expiry; harmless, and not an act on that target.)
ACTS = frozenset({CREATE, SELF, PATCH, DELETE})


def wait_until(predicate: Callable[[], object], seconds: float, what: str) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {seconds}s waiting for {what}"
        time.sleep(0.1)


class Replica:
    """One ``rotator daemon`` process; its stderr (JSON log lines) collected as it comes."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        """Start it (:meth:`started` waits for its HTTP server)."""
        self.name = name
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.stdout = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.client: httpx.Client | None = None

    def _read(self) -> None:
        assert self.process.stderr is not None
        self.lines.extend(self.process.stderr)

    @property
    def pid(self) -> int:
        """The process id (the journal's ``actor`` is ``host:pid``)."""
        return self.process.pid

    def events(self) -> list[dict[str, Any]]:
        """The JSON log events so far."""
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def wait_for(self, test: Callable[[dict[str, Any]], bool], seconds: float) -> dict[str, Any]:
        """The first log event passing ``test``, waiting up to ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = next((e for e in self.events() if test(e)), None)
            if found is not None:
                return found
            assert self.process.poll() is None, f"{self.name} exited: {self.output()[-3000:]}"
            time.sleep(0.05)
        msg = f"{self.name}: no such event in {seconds}s; stderr:\n{self.output()[-3000:]}"
        raise AssertionError(msg)

    def started(self, seconds: float = 120) -> "Replica":
        """Wait for ``daemon.started``; then :attr:`client` talks to its HTTP server."""
        started = self.wait_for(lambda e: e.get("event") == "daemon.started", seconds)
        self.client = httpx.Client(base_url=started["url"], timeout=10)
        return self

    def trigger(self, target: str) -> httpx.Response:
        """``POST /v1/targets/TARGET/rotate``."""
        assert self.client is not None
        return self.client.post(f"/v1/targets/{target}/rotate", headers=AUTH)

    def triggered(self, run_id: str, seconds: float = 30) -> dict[str, Any]:
        """``GET /v1/rotations/ID`` once it has finished."""
        assert self.client is not None
        client = self.client
        body: dict[str, Any] = {}

        def done() -> bool:
            body.update(client.get(f"/v1/rotations/{run_id}", headers=AUTH).json())
            return body["status"] in {"finished", "cancelled"}

        wait_until(done, seconds, f"{self.name}'s trigger {run_id}")
        return body

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM; the exit code once it has drained."""
        self.terminate()
        return self.ended(timeout)

    def terminate(self) -> None:
        """SIGTERM, without waiting."""
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL."""
        self.process.send_signal(signal.SIGKILL)
        return self.ended(30)

    def ended(self, timeout: float) -> int:
        """Wait for the process to end; its exit code (its output is kept)."""
        code = self.process.wait(timeout)
        if self.client is not None:
            self.client.close()
        self.stdout = finish_output(self.process, self._reader)
        return code

    def output(self) -> str:
        """Everything it wrote so far."""
        return self.stdout + "".join(list(self.lines))

    def statuses(self) -> Counter[str]:
        """How its runs ended, as it logged them (``daemon.run``: done, busy, failed, ...)."""
        return Counter(e["status"] for e in self.events() if e.get("event") == "daemon.run")


class Fleet:
    """Replicas of ``rotator daemon`` sharing a PostgreSQL journal, against a :class:`FakesHost`."""

    def __init__(self, host: FakesHost, database: str, folder: Path, **settings: Any) -> None:  # noqa: ANN401
        """For ``host``'s targets on ``database`` (a URL); ``settings`` go over the config's defaults."""
        self.host, self.database, self.folder = host, database, folder
        self.seed = host.seed()
        self.targets: list[dict[str, Any]] = self.seed["targets"]
        self.names = [t["name"] for t in self.targets]
        self.settings = settings
        self.replicas: dict[str, Replica] = {}
        self.gone: list[Replica] = []  # stopped or killed: their output is still scanned
        self.outputs: list[str] = []  # the commands' (run-once)
        self._reader: tuple[Config, Journal] | None = None

    # ---- configs and processes ------------------------------------------------------------------

    def config(self, name: str, *, via: Proxy | None = None) -> Path:
        """Write replica ``name``'s config: the shared journal, named ``rotator-NAME`` in PostgreSQL."""
        parts = urlsplit(self.database)
        netloc = parts.netloc if via is None else f"{parts.username}@127.0.0.1:{via.port}"
        state = urlunsplit(parts._replace(netloc=netloc, query=f"application_name=rotator-{name}"))
        defaults = {"grace": "0s", "token": {"scopes": ["api"], "lifetime": "30d"}}
        config: dict[str, Any] = {
            "gitlab": {"url": self.seed["gitlab_url"], "timeout": "10s", "requests_per_minute": UNLIMITED},
            "infisical": {
                "url": self.seed["infisical_url"],
                "timeout": "10s",
                "reads_per_minute": UNLIMITED,
                "writes_per_minute": UNLIMITED,
            },
            "state": {"url": state, "lease_ttl": "5s"},
            "max_concurrent_rotations": 4,
            "daemon": {
                "listen": "127.0.0.1:0",
                "check_interval": "1s",
                "jitter": "0s",
                "shutdown_timeout": "30s",
                "min_trigger_interval": "1m",
            },
            "defaults": defaults,
            "targets": self.targets,
        }
        for key, value in self.settings.items():
            section = config.get(key)
            config[key] = {**section, **value} if isinstance(section, dict) else value
        path = self.folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def environment(self, caller: str, skew: timedelta = timedelta(0)) -> dict[str, str]:
        """``caller``'s credentials, the test hooks armed, the clock at the fakes' (plus ``skew``)."""
        offset = int(self.host.offset() + skew.total_seconds())
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")},
            **self.seed["credentials"][caller],
            "ROTATOR_TEST_HOOKS": self.seed["hooks_key"],
            "ROTATOR_TEST_CLOCK_OFFSET": f"{offset}s" if offset >= 0 else f"-{-offset}s",
            SLEEP_SCALE: SCALE,
            "ROTATOR_API_TOKEN": API_TOKEN,
            # Debug: a "busy" run is logged only there, and every line logged is scanned for leaks.
            "ROTATOR_LOG_LEVEL": "debug",
        }

    def start(
        self, *names: str, via: Proxy | None = None, skew: timedelta = timedelta(0), wait: bool = True
    ) -> list[Replica]:
        """Start replicas ``names`` together; with ``wait``, until each serves HTTP.

        ``via`` puts a proxy between them and PostgreSQL; ``skew`` moves their clock on.
        """
        started = []
        for name in names:
            assert name not in self.replicas, f"{name} runs already"
            command = [sys.executable, "-m", "rotator", "--config", str(self.config(name, via=via)), "daemon"]
            self.replicas[name] = replica = Replica(name, command, self.environment(name, skew))
            started.append(replica)
        if wait:
            for replica in started:
                replica.started()
        return started

    def stop(self, name: str) -> int:
        """SIGTERM replica ``name``; its exit code."""
        replica = self.replicas.pop(name)
        self.gone.append(replica)
        return replica.stop()

    def kill(self, name: str) -> None:
        """SIGKILL replica ``name``."""
        replica = self.replicas.pop(name)
        self.gone.append(replica)
        assert replica.kill() == -signal.SIGKILL

    def stop_all(self) -> dict[str, int]:
        """SIGTERM every replica at once; their exit codes."""
        stopping = list(self.replicas.values())
        self.replicas.clear()
        self.gone += stopping
        for replica in stopping:
            replica.terminate()
        return {replica.name: replica.ended(60) for replica in stopping}

    def close(self) -> None:
        """Kill whatever still runs; close the journal reader."""
        for name in list(self.replicas):
            self.kill(name)
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None

    def run_once(self, *args: str) -> Result:
        """``rotator run-once ARGS`` as a process, as the command line's caller; its output kept."""
        config = self.config(CLI)
        command = [sys.executable, "-m", "rotator", "--config", str(config), "run-once", *args]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False, env=self.environment(CLI)
        )
        self.outputs.append(done.stdout + done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return Result(done.returncode, done.stdout, done.stderr)

    # ---- the journal -----------------------------------------------------------------------------

    def journal(self) -> Journal:
        """The shared journal, read-only (one connection pool, kept until :meth:`close`)."""
        if self._reader is None:
            config = wiring.load(str(self.config("reader")), {})
            self._reader = (config, wiring.read_journal(config, missing_ok=False, environ={}))
        return self._reader[1]

    def rotations(self) -> list[Any]:
        """Every rotation the journal holds (:class:`rotator.core.model.RotationRecord`), oldest first."""
        return list(reversed(self.journal().rotations(None, limit=100_000)))

    def succeeded(self) -> Counter[str]:
        """Succeeded rotations per target name."""
        return Counter(r.target for r in self.rotations() if r.outcome.value == "succeeded")

    def unfinished(self) -> list[str]:
        """Targets with a rotation in progress."""
        return [r.target for r in self.rotations() if r.outcome.value == "in_progress"]

    def status(self) -> dict[str, dict[str, Any]]:
        """``status --json``'s rows by target, as of the fakes' clock."""
        journal = self.journal()
        assert self._reader is not None
        config = self._reader[0]
        now = datetime.now(UTC) + timedelta(seconds=self.host.offset())
        return {row["target"]: row for row in report.status(config, journal, lambda: now)["targets"]}

    def all_rotated(self, times: int = 1) -> bool:
        """Every target has ``times`` succeeded rotations and none in progress (the journal's word)."""
        succeeded = self.succeeded()
        return not self.unfinished() and all(succeeded[n] >= times for n in self.names)

    def wait_all_rotated(self, seconds: float = 120, times: int = 1) -> None:
        """Until :meth:`all_rotated`."""
        wait_until(lambda: self.all_rotated(times), seconds, f"every target rotated {times} time(s)")

    # ---- the fakes' truth ------------------------------------------------------------------------

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        """Rotator's requests as the fakes logged them (see :mod:`tests.ha.fakes_host`)."""
        return self.host.calls(since)

    def creates(self, caller: str | None = None) -> Counter[int]:
        """Token creates GitLab applied (201), per project id; only ``caller``'s if given."""
        return Counter(
            c["target"]
            for c in self.calls()
            if c["route"] == CREATE and c["status"] == 201 and caller in (None, c["caller"])
        )

    def spread(self) -> dict[str, int]:
        """Succeeded rotations per replica, from the journal (its actor's pid) and the replicas' pids."""
        names = {str(r.pid): r.name for r in [*self.gone, *self.replicas.values()]}
        done = [r for r in self.rotations() if r.outcome.value == "succeeded"]
        return dict(Counter(names.get(r.actor.rpartition(":")[2], r.actor) for r in done))

    def actors(self) -> dict[str, set[str]]:
        """Per target name, the replicas that sent it an act (:data:`ACTS`)."""
        by_project = {t["project"]: t["name"] for t in self.targets}
        found: dict[str, set[str]] = {name: set() for name in self.names}
        for call in self.calls():
            if call["route"] in ACTS and call["target"] in by_project:
                found[by_project[call["target"]]].add(call["caller"])
        return found

    def caller_of_last(self, route: str) -> str:
        """The replica that sent the latest request to ``route``."""
        last = [c for c in self.calls() if c["route"] == route]
        assert last, f"no request to {route}"
        return str(last[-1]["caller"])

    def managed(self, index: int) -> list[int]:
        """Active tokens of target ``index``'s project."""
        return self.host.active_tokens(self.targets[index]["project"])

    # ---- invariants --------------------------------------------------------------------------------

    def check(self) -> None:
        """The campaign's invariants, now (see the module docstring)."""
        self.scan()
        assert self.host.misdeeds() == []
        rows = self.status()
        for index, target in enumerate(self.targets):
            name = target["name"]
            assert self.host.held_works(target["connection_id"]), f"lockout: {name}"
            row = rows[name]
            unfinished = row.get("last_outcome") == "in_progress"
            allowed = 1 + len(row["pending_revokes"]) + len(row["possibly_held"]) + unfinished
            active = self.managed(index)
            assert len(active) <= allowed, (name, row, active)

    def settled(self) -> bool:
        """One active token per target, nothing pending, possibly held or unfinished."""
        rows = self.status()
        quiet = all(not r["pending_revokes"] and not r["possibly_held"] for r in rows.values())
        return (
            quiet and not self.unfinished() and all(len(self.managed(i)) == 1 for i in range(len(self.names)))
        )

    def converge(self, advance: timedelta = timedelta(minutes=16), runs: int = 3) -> None:
        """Stop the replicas, move the clock past any settle time, ``run-once`` until settled; check."""
        codes = self.stop_all()
        assert all(code in {0, 1} for code in codes.values()), codes
        # A killed replica's lease lapses on the database's clock, which the fakes' clock does not
        # move: until then run-once would only report the target busy.
        self.wait_leases_lapsed()
        self.host.advance(advance.total_seconds())
        result = None
        for _ in range(runs):
            result = self.run_once()
            if result.code == 0 and self.settled():
                self.check()
                return
            self.host.advance(advance.total_seconds())
        msg = f"did not converge in {runs} runs: {result}"
        raise AssertionError(msg)

    def wait_leases_lapsed(self, timeout: float = 60) -> None:
        """Until no lease is live on the database's clock (a dead holder's lapses after its TTL)."""

        def live() -> int:
            with psycopg.connect(self.database, autocommit=True) as conn:
                query = (
                    "SELECT count(*) FROM leases WHERE holder IS NOT NULL AND lease_until > clock_timestamp()"
                )
                row = conn.execute(query).fetchone()
                return int(row[0]) if row else 0

        deadline = time.monotonic() + timeout
        while live():
            assert time.monotonic() < deadline, "a lease is still live"
            time.sleep(0.2)

    def scan(self) -> None:
        """No credential or token value in any output or in the journal's tables."""
        texts = [r.output() for r in [*self.gone, *self.replicas.values()]] + self.outputs + [self.dump()]
        values = self.host.secrets()
        for text in texts:
            leaked = [v for v in values if v in text]
            assert not leaked, f"a token value leaked ({len(leaked)} of them, in {len(text)} characters)"

    def dump(self) -> str:
        """Every row of every table of the journal, as JSON text."""
        with psycopg.connect(self.database, autocommit=True) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                )
            ]
            return "\n".join(
                str(row[0])
                for table in tables
                for row in conn.execute(f'SELECT row_to_json(t)::text FROM "{table}" t'.encode())  # noqa: S608
            )


@contextmanager
def running(fleet: Fleet) -> Iterator[Fleet]:
    """``fleet``, its replicas killed and its reader closed afterwards."""
    try:
        yield fleet
    finally:
        fleet.close()
