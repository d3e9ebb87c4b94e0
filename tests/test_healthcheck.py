"""``rotator healthcheck``: the image's HEALTHCHECK, probing /healthz wherever daemon.listen says."""

import http.server
import socket
import threading
import time

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from rotator.doors import healthcheck
from rotator.doors.config import DaemonSettings
from rotator.testing import Fakes
from tests.cli_harness import Result, run_in_process
from tests.test_web import running_daemon


def config(folder: Path, listen: str) -> Path:
    """A config holding ``daemon.listen`` only: nothing else is read, so nothing else is needed."""
    path = folder / "probe.yaml"
    path.write_text(yaml.safe_dump({"daemon": {"listen": listen}}))
    return path


def probe(path: Path | None, *before: str) -> Result:
    """``rotator [BEFORE] healthcheck [--config PATH]`` with no secret in the environment."""
    arguments = [*before, "healthcheck", *(["--config", str(path)] if path is not None else [])]
    return run_in_process(arguments, {"PATH": "/usr/bin:/bin"})


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: bound, never listening, so no one else takes it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@contextmanager
def answering(status: int) -> Iterator[int]:
    """A loopback HTTP server answering every GET with ``status``: something that is not the daemon."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            """Silence the default access log."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_running_daemon_is_healthy_on_the_port_daemon_listen_names(fakes: Fakes, tmp_path: Path) -> None:
    """Against a running daemon's port, with the config before or after the command: exit 0, no output."""
    with running_daemon(fakes, tmp_path, scheduled=False) as running:
        port = running.server.socket.getsockname()[1]
        path = config(tmp_path, f"127.0.0.1:{port}")
        after = probe(path)
        before = probe(None, "--config", str(path))
    assert (after.code, after.stdout, after.stderr) == (0, "", "")
    assert before.code == 0, before.stderr


def test_a_wildcard_listen_is_probed_on_loopback(fakes: Fakes, tmp_path: Path) -> None:
    """daemon.listen 0.0.0.0:PORT (the image's default form) is probed at 127.0.0.1:PORT."""
    with running_daemon(fakes, tmp_path, scheduled=False) as running:
        port = running.server.socket.getsockname()[1]
        result = probe(config(tmp_path, f"0.0.0.0:{port}"))
    assert result.code == 0, result.stderr


def test_the_configured_port_is_followed_not_a_fixed_one(fakes: Fakes, tmp_path: Path) -> None:
    """The same daemon, a config naming another port: exit 1, naming the address it probed."""
    with running_daemon(fakes, tmp_path, scheduled=False), closed_port() as elsewhere:
        result = probe(config(tmp_path, f"127.0.0.1:{elsewhere}"))
    assert result.code == 1
    assert f"http://127.0.0.1:{elsewhere}/healthz" in result.stderr


def test_a_closed_port_is_unhealthy_at_once(tmp_path: Path) -> None:
    """Nothing listening: exit 1 with the reason, well before the probe's timeout."""
    with closed_port() as port:
        started = time.monotonic()
        result = probe(config(tmp_path, f"127.0.0.1:{port}"))
        took = time.monotonic() - started
    assert result.code == 1
    assert result.stderr == f"rotator healthcheck: http://127.0.0.1:{port}/healthz: Connection refused\n"
    assert took < healthcheck.TIMEOUT


def test_another_answer_than_200_is_unhealthy(tmp_path: Path) -> None:
    """Something else on the port answering 503: exit 1, the status on stderr."""
    with answering(503) as port:
        result = probe(config(tmp_path, f"127.0.0.1:{port}"))
    assert result.code == 1
    assert result.stderr.endswith("/healthz: 503\n")


@pytest.mark.parametrize(
    ("document", "key"),
    [
        (None, "--config: no configuration"),
        ("daemon: [unclosed", "--config:"),
        ("daemon: {listen: '127.0.0.1:0'}", "daemon.listen:"),
        ("daemon: {listen: 'localhost'}", "daemon.listen:"),
    ],
)
def test_a_config_it_cannot_use_is_exit_1_naming_the_key(
    tmp_path: Path, document: str | None, key: str
) -> None:
    """No config, bad YAML, port 0 or no port: exit 1 (Docker reserves 2), naming the key at fault."""
    path = None
    if document is not None:
        path = tmp_path / "probe.yaml"
        path.write_text(document)
    result = probe(path)
    assert result.code == 1
    assert result.stderr.startswith(f"rotator healthcheck: {key}")
    assert "Traceback" not in result.stderr


def test_a_bad_log_variable_is_not_exit_2(tmp_path: Path) -> None:
    """The probe logs nothing, so ROTATOR_LOG_LEVEL is not its business: still 0 or 1, never 2."""
    with closed_port() as port:
        arguments = ["healthcheck", "--config", str(config(tmp_path, f"127.0.0.1:{port}"))]
        result = run_in_process(arguments, {"ROTATOR_LOG_LEVEL": "verbose", "ROTATOR_LOG_FORMAT": "xml"})
    assert result.code == 1
    assert result.stderr == f"rotator healthcheck: http://127.0.0.1:{port}/healthz: Connection refused\n"


def test_a_config_without_daemon_listen_probes_its_default() -> None:
    """No daemon.listen in the config: daemon.listen's default, on loopback; other hosts as written."""
    assert DaemonSettings().listen == healthcheck.DEFAULT_LISTEN
    assert healthcheck.address({}) == ("127.0.0.1", 8080)
    assert healthcheck.address({"daemon": None}) == ("127.0.0.1", 8080)
    assert healthcheck.address({"daemon": {"listen": "[::]:9090"}}) == ("::1", 9090)
    assert healthcheck.address({"daemon": {"listen": "10.0.0.7:9090"}}) == ("10.0.0.7", 9090)
