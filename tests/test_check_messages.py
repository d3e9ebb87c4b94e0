"""``rotator check`` says what to fix: the variable, the config key or the address, once, and quickly."""

import socket

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, UA, Harness, Result, run_in_process


SELF = "GET /api/v4/personal_access_tokens/self"
LOGIN = "POST /api/v1/auth/universal-auth/login"
GET_CONNECTION = "GET /api/v1/app-connections/gitlab/:connectionId"
LOCKOUT = "not retried: repeated failures lock the identity"
UNKNOWN_CONNECTION = "00000000-0000-4000-8000-000000000000"
#: adopt_token_id's line when its project could not be read: shown as skipped, not left out.
UNREAD = "not checked: the project could not be read (above)"


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """Both example targets against the fakes."""
    return Harness(fakes, tmp_path)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: a connect is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unanswering_port() -> Iterator[int]:
    """A loopback port whose listen queue is full: a connect is neither accepted nor refused (it hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    # Linux queues backlog + 1 connections, then drops further handshakes: fill the queue past that.
    waiting = [socket.socket() for _ in range(3)]
    for client in waiting:
        client.setblocking(False)  # noqa: FBT003 - the socket API
        client.connect_ex(("127.0.0.1", port))
    try:
        yield port
    finally:
        for client in waiting:
            client.close()
        server.close()


def _run(h: Harness, env: dict[str, str], *args: str) -> Result:
    return run_in_process(h.arguments(*args), env)


def _lines(result: Result, *prefixes: str) -> list[str]:
    """The stdout lines that start with one of ``prefixes``."""
    return [line for line in result.stdout.splitlines() if line.startswith(prefixes)]


def _refused_login(names: str, cause: str) -> list[str]:
    """The lines of `check` for a refused Universal Auth login with ``names``, both connections skipped."""
    return [
        (
            f"PROBLEM infisical: credentials: Infisical refused the Universal Auth login with {names}"
            f" ({cause}): fix them; {LOCKOUT}"
        ),
        f"skip    app-deploy: connection {CONNECTIONS[0]}: not checked: Infisical refused {names} (above)",
        f"skip    api-deploy: connection {CONNECTIONS[1]}: not checked: Infisical refused {names} (above)",
    ]


def _gitlab_calls(h: Harness) -> dict[str, int]:
    return h.fakes.gitlab.call_counts(user_agent=UA)


def _infisical_calls(h: Harness) -> dict[str, int]:
    return h.fakes.infisical.call_counts(user_agent=UA)


@pytest.mark.parametrize("as_file", [False, True], ids=["variable", "file"])
def test_a_refused_gitlab_token_names_the_variable_it_came_from(
    h: Harness, tmp_path: Path, *, as_file: bool
) -> None:
    """GitLab's 401 names ROTATOR_GITLAB_TOKEN (or _FILE); the projects are skipped, not asked again."""
    env = h.environment()
    del env["ROTATOR_GITLAB_TOKEN"]
    wrong = "glpat-NotTheManagerToken0000"
    if as_file:
        (tmp_path / "token").write_text(wrong + "\n")
        env["ROTATOR_GITLAB_TOKEN_FILE"] = str(tmp_path / "token")
    else:
        env["ROTATOR_GITLAB_TOKEN"] = wrong
    variable = "ROTATOR_GITLAB_TOKEN_FILE" if as_file else "ROTATOR_GITLAB_TOKEN"
    result = _run(h, env, "check")
    assert result.code == 1, result.stdout + result.stderr
    assert _lines(result, "PROBLEM", "skip") == [
        (
            f"PROBLEM gitlab: manager token: GitLab refused the token in {variable}"
            f" (401: 401 Unauthorized): fix {variable}"
        ),
        f"skip    app-deploy: project acme/app: not checked: GitLab refused {variable} (above)",
        f"skip    app-deploy: adopt_token_id 1: {UNREAD}",
        f"skip    api-deploy: project acme/api: not checked: GitLab refused {variable} (above)",
        f"skip    api-deploy: adopt_token_id 2: {UNREAD}",
    ]
    assert _gitlab_calls(h) == {SELF: 1}
    assert wrong not in result.stdout + result.stderr


def test_a_refused_static_infisical_token_names_its_variable(h: Harness) -> None:
    """A static Infisical token that does not verify (403 TokenError) names ROTATOR_INFISICAL_TOKEN."""
    env = h.environment({"ROTATOR_INFISICAL_TOKEN": "not-a-jwt"})
    del env["ROTATOR_INFISICAL_CLIENT_ID"], env["ROTATOR_INFISICAL_CLIENT_SECRET"]
    result = _run(h, env, "check")
    assert result.code == 1, result.stdout + result.stderr
    skipped = "not checked: Infisical refused ROTATOR_INFISICAL_TOKEN (above)"
    assert _lines(result, "PROBLEM", "skip") == [
        (
            "PROBLEM infisical: credentials: Infisical refused the token in ROTATOR_INFISICAL_TOKEN"
            " (403: TokenError: The provided access token is malformed. Please re-authenticate.):"
            " fix ROTATOR_INFISICAL_TOKEN"
        ),
        f"skip    app-deploy: connection {CONNECTIONS[0]}: {skipped}",
        f"skip    api-deploy: connection {CONNECTIONS[1]}: {skipped}",
    ]
    assert _infisical_calls(h) == {GET_CONNECTION: 1}


@pytest.mark.parametrize("as_file", [False, True], ids=["variable", "file"])
def test_a_refused_login_names_both_variables_and_is_sent_once(
    h: Harness, tmp_path: Path, *, as_file: bool
) -> None:
    """A refused login names the variables in use, says why it is not retried, and is sent once."""
    env = h.environment()
    secret = "ROTATOR_INFISICAL_CLIENT_SECRET"
    if as_file:
        del env[secret]
        (tmp_path / "secret").write_text("wrong-client-secret\n")
        env[f"{secret}_FILE"] = str(tmp_path / "secret")
        secret += "_FILE"
    else:
        env[secret] = "wrong-client-secret"
    result = _run(h, env, "check")
    assert result.code == 1, result.stdout + result.stderr
    names = f"ROTATOR_INFISICAL_CLIENT_ID and {secret}"
    assert _lines(result, "PROBLEM", "skip") == _refused_login(
        names, "401: UnauthorizedError: Invalid credentials"
    )
    assert _infisical_calls(h) == {LOGIN: 1}
    assert h.run("check").code == 0  # one failure locks nothing: the right secret still logs in


def test_an_unknown_client_id_is_a_refused_login_sent_once(h: Harness) -> None:
    """Infisical's 404 for an unknown client id is a refused login: one line, one login, items skipped."""
    env = h.environment()
    env["ROTATOR_INFISICAL_CLIENT_ID"] = "00000000-0000-4000-8000-000000000000"
    result = _run(h, env, "check")
    assert result.code == 1, result.stdout + result.stderr
    names = "ROTATOR_INFISICAL_CLIENT_ID and ROTATOR_INFISICAL_CLIENT_SECRET"
    cause = "404: NotFound: No identity with specified client ID was found"
    assert _lines(result, "PROBLEM", "skip") == _refused_login(names, cause)
    assert _infisical_calls(h) == {LOGIN: 1}


def test_a_locked_identity_is_asked_once_and_the_lockout_is_said(h: Harness) -> None:
    """After three bad logins elsewhere, check sends one login and shows Infisical's lockout message."""
    seed = h.fakes.seed
    for _ in range(3):
        httpx.post(
            f"{seed.infisical_url}/api/v1/auth/universal-auth/login",
            json={"clientId": seed.infisical_client_id, "clientSecret": "bad"},
        )
    result = h.run("check")
    assert result.code == 1
    assert _lines(result, "PROBLEM") == [
        (
            "PROBLEM infisical: credentials: Infisical refused the Universal Auth login with"
            " ROTATOR_INFISICAL_CLIENT_ID and ROTATOR_INFISICAL_CLIENT_SECRET (401: UnauthorizedError:"
            f" This identity auth method is temporarily locked, please try again later): fix them; {LOCKOUT}"
        ),
    ]
    assert _infisical_calls(h) == {LOGIN: 1}


def test_infisicals_404_is_the_connection_not_the_credentials(h: Harness) -> None:
    """An unknown connection id names targets[0].connection_id; the credentials that read it are ok."""
    path = h.folder / "rotator.yaml"
    config = yaml.safe_load(path.read_text())
    config["targets"][0]["connection_id"] = UNKNOWN_CONNECTION
    path.write_text(yaml.safe_dump(config))
    result = h.run("check")
    assert result.code == 1, result.stdout + result.stderr
    assert _lines(result, "ok      infisical", "PROBLEM", "skip") == [
        "ok      infisical: credentials",
        (
            f"PROBLEM app-deploy: connection {UNKNOWN_CONNECTION}: targets[0].connection_id:"
            f" {UNKNOWN_CONNECTION} not found in Infisical, or the identity may not read it (404)"
        ),
    ]


@pytest.mark.parametrize("upstream", ["gitlab", "infisical"])
def test_an_unreachable_upstream_is_named_by_its_address(h: Harness, closed_port: int, upstream: str) -> None:
    """Nothing listening: one line with the URL and port, then that upstream's items are skipped."""
    seed = h.fakes.seed
    down = f"http://127.0.0.1:{closed_port}"
    h.write_config(urls=(down, seed.infisical_url) if upstream == "gitlab" else (seed.gitlab_url, down))
    result = h.run("check")
    assert result.code == 1, result.stdout + result.stderr
    if upstream == "gitlab":
        expected = [
            f"PROBLEM gitlab: manager token: cannot reach {down}: connection refused",
            "skip    app-deploy: project acme/app: not checked: GitLab could not be reached (above)",
            f"skip    app-deploy: adopt_token_id 1: {UNREAD}",
            "skip    api-deploy: project acme/api: not checked: GitLab could not be reached (above)",
            f"skip    api-deploy: adopt_token_id 2: {UNREAD}",
        ]
    else:
        skipped = "not checked: Infisical could not be reached (above)"
        expected = [
            f"PROBLEM infisical: credentials: cannot reach {down}: connection refused",
            f"skip    app-deploy: connection {CONNECTIONS[0]}: {skipped}",
            f"skip    api-deploy: connection {CONNECTIONS[1]}: {skipped}",
        ]
    # GitLab unreachable: each connection's instanceUrl also differs from gitlab.url now.
    assert [line for line in _lines(result, "PROBLEM", "skip") if "points at" not in line] == expected


@pytest.mark.slow
def test_a_host_that_does_not_resolve_is_named_with_its_port(h: Harness) -> None:
    """A gitlab.url whose name does not resolve: the address with its default port, and the DNS failure."""
    h.write_config(urls=("https://gitlab.rotator-test.invalid", h.fakes.seed.infisical_url))
    result = h.run("check")
    assert result.code == 1
    [line] = _lines(result, "PROBLEM gitlab")
    reach = "cannot reach https://gitlab.rotator-test.invalid:443: DNS lookup failed ("
    assert line.startswith(f"PROBLEM gitlab: manager token: {reach}"), line


@pytest.mark.slow
@pytest.mark.parametrize("upstream", ["gitlab", "infisical"])
def test_a_connect_that_hangs_is_given_up_after_five_seconds(
    h: Harness, unanswering_port: int, upstream: str
) -> None:
    """With a 30 s timeout configured, check's connect gives up after 5 s (a run would wait 30 s, 5 times)."""
    seed = h.fakes.seed
    down = f"http://127.0.0.1:{unanswering_port}"
    urls = (down, seed.infisical_url) if upstream == "gitlab" else (seed.gitlab_url, down)
    h.write_config(urls=urls, timeout="30s")
    result = h.run("check")
    assert result.code == 1, result.stdout + result.stderr
    item = "gitlab: manager token" if upstream == "gitlab" else "infisical: credentials"
    assert f"PROBLEM {item}: cannot reach {down}: no connection within 5s" in result.stdout.splitlines()


def test_check_sends_each_request_once_where_run_once_retries(h: Harness) -> None:
    """GitLab dropping every connection: check asks once and skips the rest; run-once keeps its 5 attempts."""
    h.write_config(targets=1)
    h.fakes.gitlab.faults.drop_before("*", times=None)
    result = h.run("check")
    assert result.code == 1
    assert _lines(result, "PROBLEM", "skip") == [
        (
            "PROBLEM gitlab: manager token: gitlab GET /personal_access_tokens/self -> no response:"
            " no answer (ConnectionError)"
        ),
        "skip    app-deploy: project acme/app: not checked: GitLab did not answer (above)",
        f"skip    app-deploy: adopt_token_id 1: {UNREAD}",
    ]
    assert _gitlab_calls(h) == {SELF: 1}
    h.fakes.gitlab.reset_calls()
    assert h.run("run-once").code == 1
    assert list(_gitlab_calls(h).values()) == [5]


def test_run_once_sends_a_refused_login_once_for_all_targets(h: Harness) -> None:
    """run-once with a wrong client secret: both targets fail on the one refused login; no second login."""
    result = h.run("run-once", extra_env={"ROTATOR_INFISICAL_CLIENT_SECRET": "wrong-client-secret"})
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [["app-deploy", "failed"], ["api-deploy", "failed"]]
    assert all("401: UnauthorizedError: Invalid credentials" in line for line in lines), lines
    assert _infisical_calls(h) == {LOGIN: 1}


@pytest.mark.parametrize("command", ["check", "run-once"])
def test_a_login_refused_with_another_4xx_is_not_sent_again(h: Harness, command: str) -> None:
    """A login answered 403 (an IP allow-list, say) is not sent again for the second target either."""
    h.fakes.infisical.faults.fail(LOGIN, 403, times=None)
    result = h.run(command)
    assert result.code == 1, result.stdout + result.stderr
    if command == "check":
        [line] = _lines(result, "PROBLEM")
        assert line.startswith(
            "PROBLEM infisical: credentials: Infisical refused the Universal Auth login with"
            " ROTATOR_INFISICAL_CLIENT_ID and ROTATOR_INFISICAL_CLIENT_SECRET (403: "
        ), line
        assert line.endswith(f"): fix them; {LOCKOUT}"), line
    assert _infisical_calls(h) == {LOGIN: 1}


def _alert_for(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event.get("event") == "target.alert" and event["target"] == name


class _WrongSecret(Harness):
    """The harness with a client secret Infisical refuses, for a process started with its environment."""

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The harness's environment, the client secret wrong."""
        return super().environment(
            {"ROTATOR_INFISICAL_CLIENT_SECRET": "wrong-client-secret", **(extra or {})}
        )


@pytest.mark.slow
def test_the_daemon_sends_a_refused_login_once(fakes: Fakes, tmp_path: Path) -> None:
    """The daemon with a wrong client secret: both targets alert on one login, /readyz is 503."""
    from tests.test_daemon import DaemonProcess, daemon_config  # noqa: PLC0415 - a process helper, only here

    h = _WrongSecret(fakes, tmp_path)
    daemon_config(h, tmp_path)
    daemon = DaemonProcess(h)
    for name in ("app-deploy", "api-deploy"):
        daemon.wait_for(_alert_for(name), 30)
    ready = daemon.client.get("/readyz")
    assert daemon.stop() == 0
    assert ready.status_code == 503
    assert _infisical_calls(h) == {LOGIN: 1}


def test_a_short_grace_is_warned_in_the_configs_own_words(h: Harness) -> None:
    """A grace inside the 15m still-in-use margin is warned as written (10m), not as 0:10:00."""
    h.write_config(grace="10m")
    result = h.run("check")
    assert _lines(result, "warn") == [
        f"warn    {name}: grace 10m is shorter than the 15m still-in-use margin"
        for name in ("app-deploy", "api-deploy")
    ], result.stdout
