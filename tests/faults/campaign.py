"""One fault case: the real ``rotator`` command against the fakes, with the invariants checked.

A case's first target is of the kind it is given (``project``, ``group``, ``service_account`` or
``instance_service_account``: :mod:`tests.kinds` seeds the group and the service accounts); the
others are the seed's projects.

A run is :func:`rotator.doors.cli.main` in the test process unless it crashes (crash hook, SIGKILL) or
runs beside another (:mod:`tests.cli_harness`); the tally counts the two apart.

:class:`Case` wraps :class:`~tests.cli_harness.Harness`. Every run's output is scanned for token
values, and after every run the invariants of the campaign are checked from the outside: what
the fakes hold (through their test-only views) and what the journal says (through the same
``status``/``history`` functions the CLI prints).
"""

import contextlib
import json
import re
import signal
import subprocess

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from rotator.core.model import Role
from rotator.core.ports import Journal
from rotator.doors import report, wiring
from rotator.doors.config import Config
from rotator.testing import Fakes, Fault, ForeignHost
from tests.cli_harness import CONNECTIONS, UA, Harness, Result, patch_by_hand
from tests.faults import ledger
from tests.kinds import CONNECTION_OF, CREATE_ROUTES, INSTANCE, NAMES, Seeded, seed_kinds


#: The access token type a connection holding each kind's tokens has.
TOKEN_TYPES = {"project": "project", "group": "group", "service_account": "personal", INSTANCE: "personal"}
CRASHED = 70
#: How a failure line looks: ``<name>[ (removed)]: <status>: … step=<step> <upstream> <route> -> <status
#: or cause>`` (the result line names its target once, at its start).
FAILURE_LINE = re.compile(
    r"^(?P<target>[^\s:]+)[^:]*: \S+: .*\bstep=(?P<step>\S+) (?P<upstream>gitlab|infisical) .+ -> \S+"
)


class Case:
    """A config with ``targets`` targets for running fakes, and the campaign's checks."""

    def __init__(
        self,
        fakes: Fakes,
        folder: Path,
        *,
        targets: int = 1,
        timeout: str = "10s",
        kind: str = "project",
        **defaults: Any,  # noqa: ANN401
    ) -> None:
        """Write the config; ``defaults`` go into the config's ``defaults`` (grace 1h unless given).

        ``kind`` is the first target's: another kind than ``project`` seeds its owner first.
        """
        self.fakes, self.folder, self.targets, self.kind = fakes, folder, targets, kind
        self.seeded: Seeded | None = (
            seed_kinds(fakes, instance=kind == INSTANCE) if kind != "project" else None
        )
        self.settings: dict[str, Any] = {"targets": targets, "timeout": timeout, **defaults}
        self.h = Harness(fakes, folder, **self.settings)
        self._retarget()
        self.foreign: set[int] = set()  # tokens someone else made; rotator never manages them
        #: A host no config names, set by cases whose faults point there; nothing may reach it.
        self.elsewhere: ForeignHost | None = None
        self.names = [f"{path.rsplit('/', 1)[-1]}-deploy" for path in fakes.seed.project_paths[:targets]]
        self.names[0] = NAMES[kind]
        ledger.count("cases")

    def rewrite(self, **changes: Any) -> None:  # noqa: ANN401
        """Rewrite the config with ``changes`` to the settings it was written with."""
        self.h.write_config(**{**self.settings, **changes})
        self._retarget()

    def _retarget(self) -> None:
        """Make the config's first target the case's kind (a project one is left as written)."""
        if self.seeded is None:
            return
        path = self.folder / "rotator.yaml"
        config = yaml.safe_load(path.read_text())
        config["targets"][0] = self.seeded.target(self.kind)
        path.write_text(yaml.safe_dump(config))

    # ---- running ----------------------------------------------------------------------------

    def run(self, *args: str, crash_after: str | None = None, env: dict[str, str] | None = None) -> Result:
        """Run ``rotator ARGS``, scan its output, check the invariants."""
        result = self.h.run(*args, crash_after=crash_after, extra_env=env)
        ledger.count("in_process_runs" if result.in_process else "runs")
        if crash_after and result.code == CRASHED:
            ledger.count("crashes")
        self.scan(result.stdout + result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        self.check()
        return result

    def start(self, *args: str, env: dict[str, str] | None = None) -> "subprocess.Popen[str]":
        """Start ``rotator ARGS`` without waiting for it."""
        ledger.count("runs")
        return subprocess.Popen(
            self.h.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.h.environment(env),
        )

    def finish(self, process: "subprocess.Popen[str]", timeout: float = 120) -> Result:
        """Wait for a started process, scan its output, check the invariants."""
        stdout, stderr = process.communicate(timeout=timeout)
        self.scan(stdout + stderr)
        assert "Traceback" not in stderr, stderr
        self.check()
        return Result(process.returncode, stdout, stderr)

    def kill_at(self, fault: Fault, *args: str, env: dict[str, str] | None = None) -> Result:
        """Start ``rotator ARGS``, SIGKILL it the moment a request reaches ``fault``, check."""
        process = self.start(*args, env=env)
        reached = fault.reached.wait(60)
        process.send_signal(signal.SIGKILL)
        result = self.finish(process)
        assert reached, f"the run never reached {fault.route}: {result.stdout} {result.stderr}"
        assert result.code == -signal.SIGKILL
        ledger.count("crashes")
        return result

    def foreign_write(self, index: int = 0) -> int:
        """A person fixes things by hand: a token of their own, pushed into the connection.

        Armed faults are meant for rotator, so they are set aside for this one call. The token
        lives a year, longer than any case's clock runs, and rotator never manages it.
        """
        fakes = self.fakes
        kind = self.kind_of(index)
        if self.seeded is not None and index == 0:
            token_id, value = self.seeded.hand_made(kind)
        else:
            project = fakes.gitlab.state.find_resource("project", fakes.seed.project_paths[index])
            assert project is not None
            token = fakes.gitlab.seed_resource_token(project, "hand-made", ["api"], days=365)
            token_id, value = token.id, token.value
        self.foreign.add(token_id)
        armed = fakes.infisical.faults.pending()
        fakes.infisical.faults.clear()
        try:
            with identity_client(fakes) as client:
                answer = patch_by_hand(
                    client, fakes.seed.gitlab_url, self.connection(index), value, TOKEN_TYPES[kind]
                )
        finally:
            for fault in armed:
                fakes.infisical.faults.add(fault)
        assert answer.status_code == 200, answer.text
        return token_id

    # ---- invariants -------------------------------------------------------------------------

    def scan(self, text: str) -> None:
        """No token value in ``text``, nor in the state files as they are now."""
        blobs = [text.encode()]
        blobs += [p.read_bytes() for p in self.folder.glob("state.db*")]
        secrets = [*self.fakes.gitlab.test_only_minted_values(), self.fakes.seed.infisical_client_secret]
        for blob in blobs:
            ledger.count("bytes_scanned", len(blob))
            for value in secrets:
                if value.encode() in blob:
                    ledger.count("leaks")
                    msg = f"a token value leaked ({len(blob)} bytes scanned)"
                    raise AssertionError(msg)

    def check(self) -> None:
        """The invariants that hold after every run, converged or not."""
        for index in range(self.targets):
            if not self.held_works(index):
                ledger.count("lockouts")
                msg = f"lockout: Infisical holds a token GitLab refuses for {self.names[index]}"
                raise AssertionError(msg)
        self.check_credentials_stay_home()
        assert self.fakes.gitlab.test_only_reuse_detections() == [], "a revoked token hit a rotate path"
        ours = self.fakes.gitlab.calls(user_agent=UA)
        assert not [c for c in ours if c.route.endswith("/rotate")], "rotator called a rotate route"
        # A create may be re-sent only after GitLab refused it unapplied (429); never blindly.
        creates: dict[str | None, list[int | None]] = {}
        for c in ours:
            if c.route in CREATE_ROUTES.values():
                creates.setdefault(c.name, []).append(c.status)
        blind = {name: s for name, s in creates.items() if any(x != 429 for x in s[:-1])}
        assert not blind, f"a token create was retried blindly: {blind}"
        journal = self.journal()
        for index, row in enumerate(journal["status"]["targets"]):
            # The held token, the journal's pending and possibly-held ones, and the token an
            # unfinished rotation may have created (known to the journal by its exact name).
            unfinished = row.get("last_outcome") == "in_progress"
            allowed = 1 + len(row["pending_revokes"]) + len(row["possibly_held"]) + unfinished
            active = self.managed(index)
            assert len(active) <= allowed, (row, active)
        # Cross-target (architecture §6): a token the journal holds as some target's current one
        # is never revoked, by that target or by another (a removed target's stand-in included).
        revoked = [t for t in journal["current"] if self.fakes.gitlab.test_only_token(t).revoked]
        assert not revoked, f"tokens current for a target were revoked: {revoked}"
        ledger.count("invariant_checks")

    def check_credentials_stay_home(self) -> None:
        """No credential reached a host other than its own upstream (the fakes record each request)."""
        strays = [
            f"{c.credential_of} credential at {server.upstream} {c.route}"
            for server in (self.fakes.gitlab, self.fakes.infisical)
            for c in server.test_only_stranger_credentials()
        ]
        if self.elsewhere is not None:
            strays += [
                f"{r.method} {r.path} at a foreign host, with {', '.join(r.credentials) or 'no credential'}"
                for r in self.elsewhere.received()
            ]
        if strays:
            ledger.count("misdirected", len(strays))
            msg = f"a request reached a host it must not: {strays}"
            raise AssertionError(msg)

    def journal(self) -> dict[str, Any]:
        """``status`` and ``history`` as the CLI computes them (no state file: an empty status)."""
        config = wiring.load(str(self.folder / "rotator.yaml"), {})
        if not (self.folder / "state.db").exists():
            return {
                "status": {"targets": [_empty() for _ in self.names]},
                "history": [],
                "known": set(),
                "current": set(),
            }
        journal = wiring.open_journal(config)
        try:
            return self.view(config, journal)
        finally:
            journal.close()

    def view(self, config: Config, journal: Journal) -> dict[str, Any]:
        """What :meth:`journal` returns, read from an open ``journal`` (its status and history scanned)."""
        now = datetime.now(UTC) + self.fakes.clock.offset
        status = report.status(config, journal, lambda: now)
        history = report.history(journal, config, None, 10_000)
        tracked = [t for state in journal.targets() for t in journal.tokens(state.key)]
        known = {t.token_id for t in tracked}
        current = {t.token_id for t in tracked if t.role is Role.CURRENT}
        names = {s.name for state in journal.targets() for s in journal.tombstones(state.key)}
        self.scan(json.dumps([status, history], default=str))
        return {"status": status, "history": history, "known": known, "current": current, "tombstones": names}

    # ---- convergence ------------------------------------------------------------------------

    def converge(self, *, max_runs: int = 8, cli: bool = True) -> Result:
        """Clear every fault and run ``run-once``, moving the clock on, until all is settled.

        Settled: exit 0, nothing pending or possibly held, exactly one active managed token per
        target, Infisical holding it, and the journal knowing every active token. ``cli`` also runs
        ``status`` and ``history`` through the CLI (the report functions are checked either way).
        """
        self.fakes.gitlab.faults.clear()
        self.fakes.infisical.faults.clear()
        result = None
        for _ in range(max_runs):
            # Past any lease (10 min), backoff step (≤ 4 h) and grace (1 h) of the case.
            self.fakes.clock.advance(timedelta(hours=4, minutes=1))
            result = self.run("run-once")
            if result.code == 0 and self.settled():
                self.final_checks(cli=cli)
                return result
        msg = f"did not converge in {max_runs} runs: {result}"
        raise AssertionError(msg)

    def settled(self) -> bool:
        """Nothing pending, and one active token per target."""
        rows = self.journal()["status"]["targets"]
        quiet = all(not r["pending_revokes"] and not r["possibly_held"] for r in rows)
        return quiet and all(len(self.managed(i)) == 1 for i in range(self.targets))

    def final_checks(self, *, cli: bool = True) -> None:
        """Once settled: status and history agree, leak nothing, and know every active token."""
        for args in (("status", "--json"), ("history", "--json")) if cli else ():
            shown = self.run(*args)
            assert shown.code == 0, shown.stdout + shown.stderr
        known = self.journal()["known"]
        for index in range(self.targets):
            active = self.managed(index)
            assert set(active) <= known, f"active tokens unknown to the journal: {set(active) - known}"

    def managed(self, index: int = 0) -> list[int]:
        """Active tokens of target ``index``'s owner, less those someone else made."""
        if self.seeded is not None and index == 0:
            active = self.seeded.active(self.kind)
        else:
            active = self.h.active_tokens(index)
        return [t for t in active if t not in self.foreign]

    def held_works(self, index: int = 0) -> bool:
        """Whether GitLab accepts the token target ``index``'s connection holds (test-only views)."""
        if self.seeded is not None and index == 0:
            return self.seeded.works(self.kind)
        return self.h.held_works(index)

    def kind_of(self, index: int) -> str:
        """The kind of target ``index``: the case's for the first, ``project`` for the others."""
        return self.kind if index == 0 else "project"

    def failure_lines(self, result: Result) -> list[re.Match[str]]:
        """The lines of ``result`` that name a target, a step, an upstream and a status."""
        return [m for line in result.stdout.splitlines() if (m := FAILURE_LINE.search(line))]

    def assert_reported(self, result: Result) -> None:
        """Exit 1, and a line naming target, step, upstream and status (or cause)."""
        assert result.code == 1, result.stdout + result.stderr
        lines = self.failure_lines(result)
        assert lines, result.stdout
        assert {m["target"] for m in lines} <= set(self.names)

    def adopted(self, index: int = 0) -> int:
        """The token the config adopts for target ``index``."""
        if self.seeded is not None and index == 0:
            return self.seeded.held[self.kind]
        return self.fakes.seed.adopt_token_ids[index]

    def connection(self, index: int = 0) -> str:
        """The Infisical connection of target ``index``."""
        return CONNECTION_OF[self.kind] if index == 0 else CONNECTIONS[index]


def _empty() -> dict[str, Any]:
    return {"pending_revokes": [], "possibly_held": []}


@contextlib.contextmanager
def identity_client(fakes: Fakes) -> Iterator[httpx.Client]:
    """An httpx client for the fake Infisical, logged in as the seeded identity (not as rotator)."""
    with httpx.Client(base_url=fakes.seed.infisical_url, timeout=10) as client:
        login = client.post(
            "/api/v1/auth/universal-auth/login",
            json={
                "clientId": fakes.seed.infisical_client_id,
                "clientSecret": fakes.seed.infisical_client_secret,
            },
        )
        client.headers["Authorization"] = f"Bearer {login.json()['accessToken']}"
        yield client
