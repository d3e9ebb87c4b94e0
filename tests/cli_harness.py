"""Drive the real ``rotator`` command against the fakes, and inspect both sides.

A run calls :func:`rotator.doors.cli.main` in this process by default (:func:`run_in_process`): the same
arguments, environment, exit code, stdout and stderr as the ``rotator`` process, without an
interpreter start and the imports for each run. It runs as a real ``python -m rotator`` process
where the process boundary is the point: ``process=True``, a crash hook (it ends the process), the
daemon and the fakes (they run until signalled), and any run started off the main thread (the
environment, the standard streams and signal handlers are process-wide).
"""

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
import warnings

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from rotator.testing import Fakes


CONNECTIONS = ("3c90c3cc-0d44-4b50-8888-8dd25736052a", "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")
UA = "rotator/"
MUTATIONS = ("POST /api/v4/projects/:id/access_tokens", "PATCH /api/v1/app-connections/gitlab/:connectionId")


#: Commands that run until signalled: always a process.
LONG_RUNNING = frozenset({"daemon", "fakes"})
CRASH_AFTER = "ROTATOR_TEST_CRASH_AFTER"
#: Every retry, backoff and rate-limit wait of a run, times this: a failing upstream's five attempts
#: take milliseconds, not seconds. A test opts out with ``extra_env={SLEEP_SCALE: ""}``.
SLEEP_SCALE = "ROTATOR_TEST_SLEEP_SCALE"
SCALE = "0.001"


@dataclass
class Result:
    """A finished ``rotator`` run: a process, or :func:`rotator.doors.cli.main` called in this one."""

    code: int
    stdout: str
    stderr: str
    in_process: bool = False

    def json(self) -> Any:  # noqa: ANN401 - whatever the command printed
        """The standard output, parsed as JSON."""
        return json.loads(self.stdout)


class Harness:
    """A config in a temporary folder pointing at running fakes, and helpers to run and inspect."""

    #: The config's ``state.url``: a test may point it elsewhere (a PostgreSQL database) and rewrite.
    state_url = "sqlite:///state.db"
    #: Infisical login variables in place of the seed's Universal Auth pair (Kubernetes Auth's, say).
    infisical_login: dict[str, str] | None = None

    def __init__(self, fakes: Fakes, folder: Path, **target_fields: Any) -> None:  # noqa: ANN401
        """Write ``rotator.yaml`` for ``fakes`` with ``target_fields`` in ``defaults``."""
        self.fakes, self.folder = fakes, folder
        self.write_config(**target_fields)

    def write_config(
        self,
        *,
        targets: int = 2,
        timeout: str = "10s",
        urls: tuple[str, str] | None = None,
        **defaults: Any,  # noqa: ANN401
    ) -> None:
        """(Re)write the config: the example's targets, ``defaults`` merged over grace 1h, scopes [api].

        ``urls`` replaces the GitLab and Infisical addresses (to point one at a closed port).
        """
        seed = self.fakes.seed
        gitlab_url, infisical_url = urls or (seed.gitlab_url, seed.infisical_url)
        config = {
            "gitlab": {"url": gitlab_url, "timeout": timeout},
            "infisical": {"url": infisical_url, "timeout": timeout},
            "state": {"url": self.state_url},
            "defaults": {"grace": "1h", "token": {"scopes": ["api"], "lifetime": "30d"}, **defaults},
            "targets": [
                {
                    "name": f"{path.rsplit('/', 1)[-1]}-deploy",
                    "project": path,
                    "connection_id": CONNECTIONS[i],
                    "adopt_token_id": seed.adopt_token_ids[i],
                }
                for i, path in enumerate(seed.project_paths[:targets])
            ],
        }
        (self.folder / "rotator.yaml").write_text(yaml.safe_dump(config))

    def arguments(self, *args: str) -> list[str]:
        """``--config … ARGS``: what ``rotator`` is given."""
        return ["--config", str(self.folder / "rotator.yaml"), *args]

    def command(self, *args: str) -> list[str]:
        """``python -m rotator --config … ARGS``."""
        return [sys.executable, "-m", "rotator", *self.arguments(*args)]

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """This process's environment less ``ROTATOR_*``, plus the fakes' credentials and test hooks.

        The hooks are the fakes' clock offset and :data:`SLEEP_SCALE`. The fakes'
        ``seed.environment()`` carries ``ROTATOR_TEST_HOOKS``, the key without which rotator ignores
        every hook, ``crash_after`` included (:mod:`rotator.doors.hooks`).
        """
        offset = int(self.fakes.clock.offset.total_seconds())
        seeded = self.fakes.seed.environment()
        if self.infisical_login is not None:
            universal = ("ROTATOR_INFISICAL_CLIENT_ID", "ROTATOR_INFISICAL_CLIENT_SECRET")
            seeded = {k: v for k, v in seeded.items() if k not in universal} | self.infisical_login
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")},
            **seeded,
            "ROTATOR_TEST_CLOCK_OFFSET": f"{offset}s" if offset >= 0 else f"-{-offset}s",
            SLEEP_SCALE: SCALE,
            **(extra or {}),
        }

    def run(
        self,
        *args: str,
        crash_after: str | None = None,
        extra_env: dict[str, str] | None = None,
        process: bool = False,
    ) -> Result:
        """Run ``rotator --config … ARGS`` with the fakes' clock offset and credentials.

        In this process unless ``process`` is set or the run needs one (see the module docstring).
        """
        env = self.environment(extra_env)
        if crash_after:
            env[CRASH_AFTER] = crash_after
        if process or needs_process(args, env):
            return run_process(self.command(*args), env)
        return run_in_process(self.arguments(*args), env)

    def mutations(self) -> int:
        """Creates, PATCHes and DELETEs rotator sent to the fakes so far."""
        counts = {
            **self.fakes.gitlab.call_counts(user_agent=UA),
            **self.fakes.infisical.call_counts(user_agent=UA),
        }
        deletes = sum(n for route, n in counts.items() if route.startswith("DELETE"))
        return deletes + sum(counts.get(route, 0) for route in MUTATIONS)

    def calls(self) -> int:
        """Every request rotator sent, logins included."""
        return len(self.fakes.gitlab.calls(user_agent=UA)) + len(self.fakes.infisical.calls(user_agent=UA))

    def held_works(self, index: int = 0) -> bool:
        """Whether GitLab accepts the token Infisical holds for this connection (test-only views)."""
        held = self.fakes.infisical.test_only_held_token(CONNECTIONS[index])
        return self.fakes.gitlab.test_only_accepts(held)

    def active_tokens(self, index: int = 0) -> list[int]:
        """Ids of the project's active access tokens (the fake's test-only view: no fault applies)."""
        return self.fakes.gitlab.test_only_active_token_ids(self.fakes.seed.project_ids[index])


def needs_process(args: Sequence[str], env: dict[str, str]) -> bool:
    """Whether ``rotator ARGS`` with ``env`` must be a real process (see the module docstring)."""
    command = next((a for a in args if not a.startswith("-")), None)
    return (
        bool(env.get(CRASH_AFTER))
        or command in LONG_RUNNING
        or threading.current_thread() is not threading.main_thread()
    )


def run_process(command: list[str], env: dict[str, str], timeout: float = 120) -> Result:
    """Run ``command`` (``python -m rotator …``) as a process with exactly ``env``."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    return Result(done.returncode, done.stdout, done.stderr)


_SIGNALS = [s for s in signal.valid_signals() if s not in {signal.SIGKILL, signal.SIGSTOP}]
#: Standard-library loggers :func:`rotator.adapters.logs.configure` sets a level on.
_LOGGERS = ("httpx", "httpcore")


def run_in_process(arguments: list[str], env: dict[str, str]) -> Result:
    """``rotator ARGUMENTS`` with exactly ``env``: :func:`rotator.doors.cli.main` called here, like a process.

    ``os.environ`` is ``env`` and ``sys.stdout``/``sys.stderr`` are captured (not terminals, so
    the log is JSON, as in a process with piped output) for the run; argparse's ``SystemExit``
    becomes its code and an uncaught exception exit 1 with its traceback on stderr, as the
    interpreter would print it. Afterwards the environment, the streams, signal handlers,
    structlog's configuration and the standard-library logging the command set up are restored, so
    nothing of one run reaches the next or the test. Main thread only (signal handlers).
    """
    from rotator.doors import cli  # noqa: PLC0415 - the first run pays the imports, once per test process

    stdout, stderr = io.StringIO(), io.StringIO()
    with _isolated(env, stdout, stderr):
        try:
            code = cli.main(arguments)
        except SystemExit as leaving:
            code = _exit_code(leaving.code, stderr)
        except Exception:  # noqa: BLE001 - what the interpreter does with an uncaught exception
            stderr.write(traceback.format_exc())
            code = 1
    return Result(code, stdout.getvalue(), stderr.getvalue(), in_process=True)


def _exit_code(code: object, stderr: io.StringIO) -> int:
    """What ``sys.exit(code)`` leaves as the process's exit code (a message goes to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=stderr)
    return 1


@contextlib.contextmanager
def _isolated(env: dict[str, str], stdout: io.StringIO, stderr: io.StringIO) -> Iterator[None]:
    import structlog  # noqa: PLC0415 - with rotator's imports

    saved_env = dict(os.environ)
    handlers = {number: signal.getsignal(number) for number in _SIGNALS}
    streams = sys.stdout, sys.stderr
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    # A fresh process starts with structlog unconfigured; a run configures it for its own stderr.
    structlog.reset_defaults()
    os.environ.clear()
    os.environ.update(env)
    sys.stdout, sys.stderr = stdout, stderr
    try:
        # A process shows no DeprecationWarning from library code (and the suite's "error"
        # filter would turn one into a failure the process never has). ResourceWarning stays an
        # error: an unclosed file or connection is a leak worth failing on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            yield
    finally:
        sys.stdout, sys.stderr = streams
        os.environ.clear()
        os.environ.update(saved_env)
        for number, handler in handlers.items():
            if signal.getsignal(number) is not handler and handler is not None:
                signal.signal(number, handler)
        structlog.reset_defaults()
        root.handlers[:] = root_handlers
        root.setLevel(root_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def patch_by_hand(
    client: httpx.Client,
    gitlab_url: str,
    connection_id: str,
    value: str,
    token_type: str = "project",  # noqa: S107 - a type's name
) -> httpx.Response:
    """A person's PATCH of a connection to ``value`` (``client`` logged in as the seeded identity)."""
    return client.patch(
        f"/api/v1/app-connections/gitlab/{connection_id}",
        json={
            "credentials": {"accessToken": value, "accessTokenType": token_type, "instanceUrl": gitlab_url}
        },
    )


def finish_output(process: subprocess.Popen[str], reader: threading.Thread) -> str:
    """A process that has exited: its stderr reader joined, its stdout read; both pipes closed."""
    reader.join(5)
    assert process.stdout is not None
    assert process.stderr is not None
    stdout = process.stdout.read()
    process.stdout.close()
    process.stderr.close()
    return stdout
