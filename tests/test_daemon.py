"""``rotator daemon`` as a real process against the fakes: schedule, trigger, metrics, SIGTERM."""

import json
import re
import signal
import subprocess
import threading
import time

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rotator.testing import Fakes, start_fakes
from tests.cli_harness import Harness, finish_output


pytestmark = pytest.mark.slow
API_TOKEN = "daemon-test-api-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"


class DaemonProcess:
    """``rotator daemon`` in a subprocess; its stderr is collected line by line."""

    def __init__(
        self, harness: Harness, *, api_token: str | None = API_TOKEN, env: dict[str, str] | None = None
    ) -> None:
        """Start the daemon with the harness's config and environment, ``ROTATOR_API_TOKEN`` and ``env``."""
        extra = ({"ROTATOR_API_TOKEN": api_token} if api_token is not None else {}) | (env or {})
        self.process = subprocess.Popen(
            harness.command("daemon"),
            env=harness.environment(extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stdout = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        started = self.wait_for(lambda e: e.get("event") == "daemon.started", 30)
        self.client = httpx.Client(base_url=started["url"], timeout=10)

    def _read(self) -> None:
        assert self.process.stderr is not None
        self.lines.extend(self.process.stderr)

    def events(self) -> list[dict[str, Any]]:
        """The JSON log events so far."""
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def wait_for(self, test: Callable[[dict[str, Any]], bool], seconds: float) -> dict[str, Any]:
        """The first log event passing ``test``, waiting up to ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for event in self.events():
                if test(event):
                    return event
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"no such event in {seconds}s; stderr:\n{''.join(self.lines)[-3000:]}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.client.close()
        self.stdout = finish_output(self.process, self._reader)
        return code

    def output(self) -> str:
        """Everything the daemon wrote (after :meth:`stop`)."""
        return self.stdout + "".join(self.lines)


def finished_for(name: str) -> Callable[[dict[str, Any]], bool]:
    """A test for ``rotation.finished`` events of target ``name``."""
    return lambda event: event.get("event") == "rotation.finished" and event["target"] == name


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus scrape (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def poll(client: httpx.Client, run_id: str, seconds: float = 30) -> dict[str, Any]:
    """Wait for a triggered rotation to finish; its final state."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/rotations/{run_id}", headers=AUTH).json()
        if body["status"] in {"finished", "cancelled"}:
            return body
        time.sleep(0.05)
    pytest.fail(f"rotation {run_id} did not finish in {seconds}s")


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    """Fresh fakes per test."""
    with start_fakes() as running:
        yield running


def daemon_config(harness: Harness, folder: Path, **daemon: str) -> None:
    """Add a ``daemon:`` section listening on a free loopback port."""
    path = folder / "rotator.yaml"
    config = yaml.safe_load(path.read_text())
    config["daemon"] = {"listen": "127.0.0.1:0", "check_interval": "1s", "jitter": "0s", **daemon}
    path.write_text(yaml.safe_dump(config))
    assert harness.folder == folder


def test_daemon_schedules_triggers_counts_and_drains_on_sigterm(fakes: Fakes, tmp_path: Path) -> None:
    """Scheduled rotations happen, the trigger rotates, metrics move, SIGTERM lets a rotation finish."""
    harness = Harness(fakes, tmp_path, grace="0s")
    # 0s: step 3 triggers app-deploy again right after step 2's triggered rotation.
    daemon_config(harness, tmp_path, shutdown_timeout="60s", min_trigger_interval="0s")
    d = DaemonProcess(harness)
    # 1. The scheduler rotates both never-rotated targets on its first check.
    for name in ("app-deploy", "api-deploy"):
        d.wait_for(finished_for(name), 30)
    scrape = d.client.get("/metrics").text
    assert metric(scrape, "rotator_rotations_total", target="app-deploy", outcome="succeeded") == 1
    patches = metric(scrape, "rotator_upstream_requests_total", route=PATCH, status="200")
    assert patches == 2
    # 2. The trigger: refused without the token, accepted with it, and it really rotates.
    assert d.client.post("/v1/targets/app-deploy/rotate").status_code == 401
    accepted = d.client.post("/v1/targets/app-deploy/rotate", headers=AUTH)
    assert accepted.status_code == 202
    done = poll(d.client, accepted.json()["id"])
    assert (done["outcome"], done["failed"]) == ("done", False)
    assert [r["outcome"] for r in done["rotations"]] == ["succeeded"]
    assert harness.held_works(0)
    scrape = d.client.get("/metrics").text
    assert metric(scrape, "rotator_rotations_total", target="app-deploy", outcome="succeeded") == 2
    assert metric(scrape, "rotator_upstream_requests_total", route=PATCH, status="200") == patches + 1
    assert metric(scrape, "rotator_token_expiry_timestamp_seconds", target="app-deploy") > time.time()
    # 3. SIGTERM while a PATCH is held at Infisical: the rotation finishes, then the daemon exits 0.
    slow = fakes.infisical.faults.delay(PATCH, 4.0)
    inflight = d.client.post("/v1/targets/app-deploy/rotate", headers=AUTH)
    assert inflight.status_code == 202
    assert slow.reached.wait(30)
    second = d.client.post("/v1/targets/app-deploy/rotate", headers=AUTH)
    assert (second.status_code, second.json()["reason"]) == (409, "rotating")
    assert d.stop() == 0
    stopping = d.wait_for(lambda e: e.get("event") == "daemon.stopping", 1)
    assert stopping["in_flight"] == 1
    finished = [e for e in d.events() if e.get("event") == "rotation.finished"]
    assert [e["outcome"] for e in finished] == ["succeeded"] * 4
    assert finished[-1]["trigger"] == "http"
    assert d.events()[-1]["event"] == "daemon.stopped"
    assert harness.held_works(0)
    assert harness.held_works(1)
    assert len(harness.active_tokens(0)) == 1
    assert not re.search(r"glpat-|Bearer ", d.output())


def test_a_revoke_fires_when_its_grace_ends_not_at_the_next_check(fakes: Fakes, tmp_path: Path) -> None:
    """With an hour between checks, the old token is still revoked seconds after a 3 s grace ends."""
    harness = Harness(fakes, tmp_path, targets=1, grace="3s", hold_revoke_if_used=False)
    daemon_config(harness, tmp_path, check_interval="1h")
    old = fakes.seed.adopt_token_ids[0]
    d = DaemonProcess(harness)
    rotated = d.wait_for(lambda e: e.get("event") == "rotation.finished", 30)
    assert old in harness.active_tokens(0)  # still in its grace
    revoked = d.wait_for(lambda e: e.get("event") == "token.revoked", 20)
    assert revoked["token_id"] == old
    assert harness.active_tokens(0) == [rotated["new_token_id"]]
    assert d.stop() == 0


def test_shutdown_timeout_exits_1_and_the_next_run_resumes(fakes: Fakes, tmp_path: Path) -> None:
    """A rotation outliving shutdown_timeout: exit 1 at once; once its lease lapses, run-once finishes it."""
    harness = Harness(fakes, tmp_path, targets=1, grace="0s")
    daemon_config(harness, tmp_path, shutdown_timeout="1s", check_interval="1h")
    held = fakes.infisical.faults.hang_after(PATCH, seconds=30)
    d = DaemonProcess(harness)
    assert held.reached.wait(30)
    started = time.monotonic()
    assert d.stop() == 1
    assert time.monotonic() - started < 15
    assert d.wait_for(lambda e: e.get("event") == "daemon.shutdown_timeout", 1)["in_flight"] == 1
    fakes.infisical.faults.clear()
    fakes.clock.advance(timedelta(minutes=11))  # the dead worker's lease (10 min) has lapsed
    after = harness.run("run-once")
    assert after.code == 0, after.stderr
    assert harness.held_works(0)
    # The cut-off PATCH's token is "possibly held" and retired once it has settled (15 min).
    fakes.clock.advance(timedelta(minutes=16))
    assert harness.run("run-once").code == 0
    assert harness.held_works(0)
    assert len(harness.active_tokens(0)) == 1


def test_without_an_api_token_the_daemon_rotates_but_refuses_the_trigger(
    fakes: Fakes, tmp_path: Path
) -> None:
    """No ROTATOR_API_TOKEN: a warning, /v1/* answers 503, and scheduled rotations still happen."""
    harness = Harness(fakes, tmp_path, targets=1, grace="0s")
    daemon_config(harness, tmp_path)
    d = DaemonProcess(harness, api_token=None)
    assert d.wait_for(lambda e: e.get("event") == "daemon.trigger_off", 5)["level"] == "warning"
    d.wait_for(lambda e: e.get("event") == "rotation.finished", 30)
    refused = d.client.post("/v1/targets/app-deploy/rotate", headers=AUTH)
    assert (refused.status_code, refused.json()["reason"]) == (503, "trigger_off")
    assert d.stop() == 0


def test_a_port_in_use_is_one_clear_line_and_exit_1(fakes: Fakes, tmp_path: Path) -> None:
    """daemon.listen on a taken port: the key, the address and the reason; no traceback."""
    harness = Harness(fakes, tmp_path, targets=1)
    listen = fakes.seed.gitlab_url.removeprefix("http://")  # the fake GitLab holds this port
    daemon_config(harness, tmp_path, listen=listen)
    result = harness.run("daemon")
    assert result.code == 1
    assert f"daemon.listen: cannot listen on {listen}" in result.stderr
    assert "Traceback" not in result.stderr
    assert harness.fakes.infisical.call_counts(user_agent="rotator/").get(PATCH, 0) == 0


def test_run_once_on_sigterm_finishes_the_rotation_in_flight_and_starts_no_other(
    fakes: Fakes, tmp_path: Path
) -> None:
    """A CronJob pod stopped mid-run: the target in flight completes, the next is skipped, exit 0."""
    harness = Harness(fakes, tmp_path, grace="0s")
    path = tmp_path / "rotator.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "max_concurrent_rotations": 1}))
    slow = fakes.infisical.faults.delay(PATCH, 2.0)
    process = subprocess.Popen(
        harness.command("run-once"),
        env=harness.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert slow.reached.wait(30)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "app-deploy: done: rotated" in stdout
    assert "api-deploy: skipped: not started: stopping" in stdout
    assert harness.held_works(0)
    assert harness.held_works(1)  # untouched: still the token it held before
    assert "run.stopping" in stderr


def test_a_damaged_journal_makes_readyz_503_and_each_run_says_restore_it(
    fakes: Fakes, tmp_path: Path
) -> None:
    """The daemon on a damaged journal: /readyz 503 "damaged", each run's alert names the file and the fix."""
    harness = Harness(fakes, tmp_path)
    assert harness.run("run-once").code == 0
    journal = tmp_path / "state.db"
    with journal.open("r+b") as file:  # a bad sector in the middle of the journal
        file.seek(3 * 4096)
        file.write(b"\xff" * 4096)
    daemon_config(harness, tmp_path)
    mutations = harness.mutations()
    d = DaemonProcess(harness)
    alert = d.wait_for(lambda e: e.get("event") == "target.alert", 30)
    assert alert["error"] == (
        f"state.url: the journal at {journal} is damaged (SQLite: database disk image is malformed);"
        " restore it from a backup"
    )
    ready = d.client.get("/readyz")
    assert (ready.status_code, ready.json()["journal"]) == (503, "damaged")
    assert d.stop() == 0
    assert "Traceback" not in d.output()
    assert harness.mutations() == mutations
