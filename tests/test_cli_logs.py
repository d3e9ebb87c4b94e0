"""Log lines you can tune: --log-format, --log-level, -v and their variables; quiet on a terminal.

The choice itself is :func:`rotator.adapters.logs.decide`; the CLI runs are in process (stderr is
not a terminal there, as in a container) except one on a pseudo-terminal, where the terminal is
the point.
"""

import json
import logging
import os
import re
import subprocess

from pathlib import Path

import pytest

from rotator.adapters.logs import LogOptions, decide
from rotator.testing import Fakes
from tests.cli_harness import Harness, Result


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """A config for both example targets against the fakes."""
    return Harness(fakes, tmp_path)


@pytest.mark.parametrize(
    ("options", "terminal", "expected"),
    [
        (LogOptions(), False, (True, logging.INFO)),  # a container: JSON at info, as always
        (LogOptions(), True, (False, logging.WARNING)),  # a person: quiet, readable
        (LogOptions(verbosity=1), True, (False, logging.INFO)),
        (LogOptions(verbosity=2), True, (False, logging.DEBUG)),
        (LogOptions(verbosity=2), False, (True, logging.DEBUG)),
        (LogOptions(level=logging.INFO), True, (False, logging.INFO)),
        (LogOptions(level=logging.ERROR, verbosity=2), True, (False, logging.ERROR)),
        (LogOptions(json=True), True, (True, logging.WARNING)),
        (LogOptions(json=False), False, (False, logging.INFO)),
    ],
)
def test_what_is_not_chosen_is_decided_by_the_stream(
    options: LogOptions, terminal: bool, expected: tuple[bool, int]
) -> None:
    """Off a terminal JSON at info; on one console at warning, -v info, -vv debug; a choice wins."""
    assert decide(options, terminal=terminal) == expected


def _events(result: Result) -> list[dict[str, object]]:
    """The JSON log lines on stderr (the test-hook announcements are plain lines, skipped)."""
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def test_off_a_terminal_the_log_is_json_at_info_as_before(h: Harness) -> None:
    """No option: a first run logs its steps as JSON lines at info; stdout holds only the results."""
    done = h.run("run-once")
    assert done.code == 0, done.stderr
    assert "info" in {event["level"] for event in _events(done)}
    assert all(line.startswith(("app-deploy: ", "api-deploy: ")) for line in done.stdout.splitlines())


@pytest.mark.parametrize(
    ("args", "variables"),
    [
        (("run-once", "--log-level", "warning"), {}),
        (("--log-level", "error", "run-once"), {"ROTATOR_LOG_LEVEL": "debug"}),  # the option wins
        (("run-once",), {"ROTATOR_LOG_LEVEL": "WARNING"}),
    ],
)
def test_a_chosen_level_drops_the_info_lines(
    h: Harness, args: tuple[str, ...], variables: dict[str, str]
) -> None:
    """--log-level (before or after the command) or ROTATOR_LOG_LEVEL: no info line on stderr."""
    done = h.run(*args, extra_env=variables)
    assert done.code == 0, done.stderr
    assert "app-deploy: " in done.stdout
    assert '"level": "info"' not in done.stderr
    assert "[info" not in done.stderr


def test_console_format_off_a_terminal(h: Harness) -> None:
    """--log-format console: readable lines at info even off a terminal, no JSON, times to the second."""
    done = h.run("run-once", extra_env={"ROTATOR_LOG_FORMAT": "console"})
    assert done.code == 0, done.stderr
    assert _events(done) == []
    assert "[info" in done.stderr
    stamps = [line.split(" ", 1)[0] for line in done.stderr.splitlines() if "[info" in line]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s) for s in stamps), stamps  # RFC 3339, no µs


@pytest.mark.parametrize(
    ("variable", "value"), [("ROTATOR_LOG_LEVEL", "loud"), ("ROTATOR_LOG_FORMAT", "xml")]
)
def test_a_bad_variable_is_exit_2_naming_it(h: Harness, variable: str, value: str) -> None:
    """A log variable with a value rotator does not know: exit 2 naming it, nothing sent upstream."""
    done = h.run("run-once", extra_env={variable: value})
    assert done.code == 2
    assert f"rotator: error: {variable}: must be one of " in done.stderr
    assert f"not {value!r}" in done.stderr
    assert h.calls() == 0


def test_a_log_option_before_and_after_the_command_is_a_usage_error(h: Harness) -> None:
    """--log-level given twice, around the command: exit 2 naming --log-level, nothing sent upstream."""
    done = h.run("--log-level", "info", "run-once", "--log-level", "debug")
    assert done.code == 2
    assert "--log-level: given both before and after the command" in done.stderr
    assert h.calls() == 0


def _on_a_terminal(h: Harness, *args: str) -> tuple[str, str]:
    """``rotator ARGS`` as a process whose stderr is a pseudo-terminal: (stdout, what the terminal got)."""
    primary, secondary = os.openpty()
    with subprocess.Popen(
        h.command(*args), stdout=subprocess.PIPE, stderr=secondary, env=h.environment(), text=True
    ) as process:
        os.close(secondary)
        received = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the process closed the terminal's last writer
                break
            if not chunk:
                break
            received += chunk
        assert process.stdout is not None
        stdout = process.stdout.read()
        assert process.wait(timeout=60) == 0, received
    os.close(primary)
    return stdout, received.decode()


@pytest.mark.slow
def test_on_a_terminal_the_results_are_not_drowned(h: Harness) -> None:
    """On a terminal: no info line by default, so the results stand alone; -v brings them, not as JSON."""
    stdout, terminal = _on_a_terminal(h, "run-once")
    assert "app-deploy: " in stdout
    assert "[info" not in terminal
    assert '"level"' not in terminal
    stdout, terminal = _on_a_terminal(h, "run-once", "--force", "-v")
    assert "app-deploy: " in stdout
    assert "[info" in terminal
    assert '"level"' not in terminal
