"""Text an upstream wrote never forges a line or reaches a terminal raw: the CLI, run as a command."""

import json

from datetime import timedelta
from pathlib import Path

import gitlab
import httpx
import pytest

from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, Harness, Result, patch_by_hand


pytestmark = pytest.mark.slow

#: A message that, printed raw, would end the line, forge a "rotated" result line, clear the
#: screen, retitle the terminal, and flip the rest of the line right to left.
FORGED = (
    "refused\n2026-01-01T00:00:00Z app-deploy: succeeded: rotated\r\x1b[2J\x1b]0;pwned\x07"
    "\u2028\u202edelor\x9b31m"
)
#: How that message reads once escaped: every character still there, as text.
SHOWN = r"refused\n2026-01-01T00:00:00Z app-deploy: succeeded: rotated\r\x1b[2J\x1b]0;pwned\x07"
CREATE = "POST /api/v4/projects/:id/access_tokens"
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"
GET_CONNECTION = "GET /api/v1/app-connections/gitlab/:connectionId"
TARGETS = ("app-deploy", "api-deploy")


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """A config for both example targets against the fakes, grace 1h."""
    return Harness(fakes, tmp_path)


def _raw(text: str) -> list[str]:
    """The characters of ``text`` a terminal would act on rather than show (its own newlines aside)."""
    return [char for char in text if not (char.isprintable() or char == "\n")]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for inner in value.values() for s in _strings(inner)]
    if isinstance(value, list):
        return [s for inner in value for s in _strings(inner)]
    return []


def _assert_clean(result: Result) -> None:
    """Neither stream holds a raw control character; each log line is one JSON event free of them."""
    assert _raw(result.stdout) == [], result.stdout
    assert _raw(result.stderr) == [], result.stderr
    for line in result.stderr.splitlines():
        if line.startswith("{"):
            assert [s for s in _strings(json.loads(line)) if _raw(s)] == [], line


def _unindented(text: str) -> list[str]:
    """The lines that start a line of their own: the rest are the indented continuations of a wrapped one."""
    return [line for line in text.splitlines() if not line.startswith("  ")]


def _result_lines(result: Result) -> list[str]:
    """The lines of stdout, each of which must be one target's result: ``NAME: STATUS: DETAIL``."""
    lines = result.stdout.splitlines()
    assert sorted(line.split(": ", 1)[0] for line in lines) == sorted(TARGETS), lines
    return lines


def test_a_gitlab_message_cannot_forge_a_result_line(h: Harness) -> None:
    """GitLab refusing a create with a forged message: one escaped line per target, the log alike."""
    h.fakes.gitlab.faults.fail(CREATE, 400, body={"message": FORGED})
    result = h.run("run-once")
    assert result.code == 1
    _assert_clean(result)
    lines = _result_lines(result)
    assert len(lines) == 2
    # GitLab's adapter already folds whitespace (the newline, CR and U+2028); the rest shows escaped.
    assert sum(r"rotated \x1b[2J\x1b]0;pwned\x07 \u202edelor\x9b31m" in line for line in lines) == 1
    assert r"\x1b[2J" in result.stderr  # the failure is logged too, escaped


def test_an_infisical_message_cannot_forge_a_line_in_run_once_status_or_history(h: Harness) -> None:
    """Infisical refusing the PATCH with a forged message: run-once, status and history keep their lines."""
    h.fakes.infisical.faults.fail(PATCH, 400, body={"message": FORGED, "error": "Bad\x1b[31mRequest"})
    result = h.run("run-once")
    assert result.code == 1
    _assert_clean(result)
    assert len(_result_lines(result)) == 2
    assert SHOWN in result.stdout
    status = h.run("status")
    _assert_clean(status)
    # "as of", the header, one row per target, the failing target's reason; wrapped lines are indented.
    lines = _unindented(status.stdout)
    assert len(lines) == 5, lines
    assert lines[-1].split(": ")[:2] in ([name, "failing"] for name in TARGETS), lines[-1]
    as_json = h.run("status", "--json")
    errors = [t["last_error"] for t in as_json.json()["targets"] if t["last_error"]]
    assert len(errors) == 1
    assert _raw(errors[0]) == []
    assert r"Bad\x1b[31mRequest" in errors[0]
    history = h.run("history")
    _assert_clean(history)
    assert len(_unindented(history.stdout)) == 3  # the header, one rotation per target (errors indented)


def test_a_token_name_cannot_forge_a_line_in_take_over_or_status(
    h: Harness, infisical: httpx.Client, gl: gitlab.Gitlab
) -> None:
    """A hand-made token named with control characters is listed escaped by a take-over and by status."""
    assert h.run("run-once").code == 0
    project = gl.projects.get(h.fakes.seed.project_ids[0], lazy=True)
    expires = h.fakes.clock.now().date() + timedelta(days=30)
    by_hand = project.access_tokens.create(
        {"name": FORGED, "scopes": ["api"], "access_level": 40, "expires_at": expires.isoformat()}
    )
    assert patch_by_hand(infisical, h.fakes.gitlab.url, CONNECTIONS[0], by_hand.token).status_code == 200
    taken = h.run("rotate", "app-deploy", "--take-over")
    assert taken.code == 0, taken.stdout + taken.stderr
    _assert_clean(taken)
    assert len(taken.stdout.splitlines()) == 1
    assert f"{by_hand.id} {SHOWN}" in taken.stdout
    status = h.run("status")
    _assert_clean(status)
    lines = _unindented(status.stdout)
    assert len(lines) == 5, lines  # "as of", the header, a row per target, the untracked-token line
    assert lines[-1].startswith("app-deploy: untracked active tokens")
    assert " ".join(f"{by_hand.id} {SHOWN}".split()) in " ".join(status.stdout.split())  # wrapped, whole


def test_check_shows_upstream_names_and_messages_on_one_line_each(h: Harness) -> None:
    """``check``: a forged manager token name and Infisical message stay inside their own lines."""
    manager = h.fakes.gitlab.test_only_user("rotator-manager")
    token = h.fakes.gitlab.seed_personal_token(manager, ["api"], name=FORGED)
    h.fakes.infisical.faults.fail(GET_CONNECTION, 403, body={"message": FORGED}, times=None)
    result = h.run("check", extra_env={"ROTATOR_GITLAB_TOKEN": token.value})
    assert result.code == 1
    _assert_clean(result)
    lines = result.stdout.splitlines()
    assert all(line.split(" ", 1)[0] in {"ok", "info", "warn", "PROBLEM"} for line in lines), lines
    assert sum(SHOWN in line for line in lines) == 4  # the token's name, then each connection read


def test_forget_shows_an_upstream_refusal_on_one_line(h: Harness) -> None:
    """``forget --revoke`` refused by a forged Infisical message: its lines stay its own."""
    assert h.run("run-once").code == 0
    h.write_config(targets=1)
    seed = h.fakes.seed
    key = f"{seed.gitlab_url}|{seed.project_ids[1]}|{CONNECTIONS[1]}"
    h.fakes.clock.advance(timedelta(minutes=16))
    h.fakes.infisical.faults.fail(GET_CONNECTION, 403, body={"message": FORGED}, times=None)
    result = h.run("forget", key, "--revoke")
    assert result.code == 1, result.stdout + result.stderr
    _assert_clean(result)
    lines = result.stdout.splitlines()
    assert all(line.startswith(("not revoked: ", "kept ", "revoked ")) for line in lines), lines
    assert sum(SHOWN in line for line in lines) == 1
