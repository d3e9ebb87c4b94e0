"""The rotator command line: --version, --help, and `rotator fakes` as a real subprocess.

The exit-2 cases call the command in process (:func:`tests.cli_harness.run_in_process`).
"""

import json
import os
import signal
import socket
import subprocess
import sys

from pathlib import Path

import httpx

from tests.cli_harness import run_in_process


def _rotator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_prints_the_package_version() -> None:
    """`rotator --version` prints 'rotator <version>' and exits 0 (a process: `python -m rotator` itself)."""
    result = _rotator("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("rotator ")


def test_missing_command_is_a_usage_error() -> None:
    """No command is exit 2 with usage on stderr."""
    result = run_in_process([], dict(os.environ))
    assert result.code == 2
    assert "usage: rotator" in result.stderr


def test_fakes_help_teaches_the_ports() -> None:
    """`rotator fakes --help` explains ports and the seed."""
    result = run_in_process(["fakes", "--help"], dict(os.environ))
    assert result.code == 0
    assert "--port 0" in result.stdout
    assert "config/example.yaml" in result.stdout


def test_fakes_command_serves_the_seed_and_stops_on_sigterm() -> None:
    """`rotator fakes --port 0 --json` prints a working seed and exits 0 on SIGTERM."""
    with subprocess.Popen(
        [sys.executable, "-m", "rotator", "fakes", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            assert process.stdout is not None
            seed = json.loads(process.stdout.readline())
            user = httpx.get(
                f"{seed['gitlab_url']}/api/v4/user",
                headers={"PRIVATE-TOKEN": seed["manager_token"]},
            )
            assert user.json()["username"] == "rotator-manager"
            conn = httpx.get(
                f"{seed['infisical_url']}/api/v1/app-connections/gitlab/{seed['connection_ids'][0]}",
                headers={"Authorization": f"Bearer {seed['infisical_token']}"},
            )
            assert conn.json()["appConnection"]["credentials"]["instanceUrl"] == seed["gitlab_url"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            process.kill()


def test_fakes_on_a_busy_port_is_a_clear_error() -> None:
    """A port already in use is exit 1 with a message naming the address."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _rotator("fakes", "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_example_config_passes_check_against_the_fakes_command(tmp_path: Path) -> None:
    """`rotator fakes` on its default ports and config/example.yaml: `check` exits 0 and creates no file."""
    example = Path(__file__).parent.parent / "config" / "example.yaml"
    config = tmp_path / "example.yaml"
    config.write_text(example.read_text())
    with subprocess.Popen(
        [sys.executable, "-m", "rotator", "fakes", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as fakes:
        try:
            assert fakes.stdout is not None
            seed = json.loads(fakes.stdout.readline())
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")},
                "ROTATOR_GITLAB_TOKEN": seed["manager_token"],
                "ROTATOR_INFISICAL_CLIENT_ID": seed["infisical_client_id"],
                "ROTATOR_INFISICAL_CLIENT_SECRET": seed["infisical_client_secret"],
                "ROTATOR_CONFIG": str(config),
            }
            result = subprocess.run(
                [sys.executable, "-m", "rotator", "check"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=env,
            )
        finally:
            fakes.send_signal(signal.SIGTERM)
            fakes.wait(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PROBLEM" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["example.yaml"]


def test_no_config_is_exit_2_naming_the_option() -> None:
    """Without --config or ROTATOR_CONFIG a target command exits 2 and says how to give one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    result = run_in_process(["status"], env)
    assert result.code == 2
    assert "--config" in result.stderr
    assert "ROTATOR_CONFIG" in result.stderr


def test_a_journal_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    """state.url under a path that cannot be a folder: run-once exits 2 naming state.url, no traceback."""
    (tmp_path / "afile").write_text("not a folder")
    config = tmp_path / "rotator.yaml"
    config.write_text(
        "gitlab: {url: https://gitlab.example.com}\n"
        "state: {url: 'sqlite:///afile/state.db'}\n"
        "targets: [{name: app, project: 1, connection_id: 3c90c3cc-0d44-4b50-8888-8dd25736052a,"
        " token: {scopes: [api]}}]\n"
    )
    # Only a command that writes creates the journal (status and history never do); the secrets are
    # dummies: the journal is opened before anything is sent upstream.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")},
        "ROTATOR_GITLAB_TOKEN": "glpat-" + "x" * 20,
        "ROTATOR_INFISICAL_TOKEN": "dummy",
    }
    done = run_in_process(["--config", str(config), "run-once"], env)
    assert done.code == 2
    assert "state.url: cannot create the journal" in done.stderr
    assert "Traceback" not in done.stderr


def _status_config(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "rotator.yaml"
    config.write_text(
        "gitlab: {url: https://gitlab.example.com}\n"
        f"state: {{url: 'sqlite:///{tmp_path}/state.db'}}\n"
        "targets: [{name: app, project: 1, connection_id: 3c90c3cc-0d44-4b50-8888-8dd25736052a,"
        " token: {scopes: [api]}}]\n"
    )
    return config, {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}


def test_config_is_accepted_after_the_command(tmp_path: Path) -> None:
    """`rotator status --config x.yaml` reads x.yaml exactly as `rotator --config x.yaml status` does."""
    config, env = _status_config(tmp_path)
    before = run_in_process(["--config", str(config), "status", "--json"], env)
    after = run_in_process(["status", "--json", "--config", str(config)], env)
    # Nothing has run yet: both name the journal the file configures, so both read the file.
    assert (before.code, after.code) == (2, 2)
    assert f"state.url: no journal at {tmp_path}/state.db" in after.stderr
    assert after.stderr == before.stderr


def test_config_given_before_and_after_the_command_is_a_usage_error(tmp_path: Path) -> None:
    """Two --config values for one run: exit 2 naming --config, nothing read or written."""
    config, env = _status_config(tmp_path)
    result = run_in_process(["--config", str(config), "run-once", "--config", str(config)], env)
    assert result.code == 2
    assert "--config: given both before and after the command" in result.stderr
    assert not (tmp_path / "state.db").exists()


def test_every_target_command_takes_config_after_it() -> None:
    """Each command that reads the config lists --config in its own --help."""
    from rotator.doors.cli import TARGET_COMMANDS  # noqa: PLC0415 - the list under test

    for command in TARGET_COMMANDS:
        shown = run_in_process([command, "--help"], dict(os.environ))
        assert shown.code == 0
        assert "--config PATH" in shown.stdout, command
