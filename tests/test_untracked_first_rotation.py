"""A first rotation without adopt_token_id names the owner's untracked tokens in plan, check and run-once."""

import json

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator.core.model import Outcome, RotationRecord
from rotator.doors import wiring
from rotator.testing import Fakes
from rotator.testing._gitlab_state import OWNER, Token
from tests.cli_harness import Harness, Result, run_in_process
from tests.kinds import Seeded, seed_kinds
from tests.test_daemon import DaemonProcess, daemon_config


pytestmark = pytest.mark.slow

PROJECT_TOKENS = "GET /api/v4/projects/:id/access_tokens"
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"
SELF = "GET /api/v4/personal_access_tokens/self"
#: The exit code of a run the crash hook ended.
CRASHED = 70


def _config(h: Harness) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((h.folder / "rotator.yaml").read_text())
    return loaded


def _write(h: Harness, config: dict[str, Any]) -> None:
    (h.folder / "rotator.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """The seed's first project as the only target, with no adopt_token_id."""
    harness = Harness(fakes, tmp_path, targets=1)
    config = _config(harness)
    del config["targets"][0]["adopt_token_id"]
    _write(harness, config)
    return harness


def _run(h: Harness, *args: str) -> Result:
    """``rotator ARGS`` in process, so wide that nothing wraps."""
    return run_in_process(h.arguments(*args), {**h.environment(), "COLUMNS": "1000"})


def _warnings(result: Result) -> list[str]:
    """The untracked-token warning lines of any command's output (indent stripped)."""
    return [line.strip() for line in result.stdout.splitlines() if "no target tracks" in line]


def _events(result: Result) -> list[dict[str, Any]]:
    """The ``target.untracked_tokens`` log lines (the log is JSON when captured)."""
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == "target.untracked_tokens"]


def test_plan_check_and_run_once_name_the_held_token_with_the_exact_hint(h: Harness) -> None:
    """Without adopt_token_id: plan, check and run-once name the token (id, name); exit codes stay 0."""
    held = h.fakes.seed.adopt_token_ids[0]
    named = f"project acme/app (1) holds 1 active token no target tracks: {held} app-deploy (expires"
    hint = f"add `adopt_token_id: {held}` under targets[0] (app-deploy) to have it revoked after grace"
    plan, check = _run(h, "plan"), _run(h, "check")
    assert (plan.code, check.code) == (0, 0), plan.stdout + check.stdout
    for result, start in (
        (plan, "warn    untracked tokens: "),
        (check, "warn    app-deploy: untracked tokens: "),
    ):
        (line,) = _warnings(result)
        assert line.startswith(start + named), line
        assert hint in line
    done = _run(h, "run-once")
    assert done.code == 0, done.stdout + done.stderr
    (line,) = _warnings(done)
    assert line.startswith(f"app-deploy: warn: {named}"), line
    # The rotation verified: adopt_token_id no longer applies, and the line says what does.
    assert "adding it now changes nothing; revoke that token by hand in GitLab" in line
    assert "adopt_token_id: " not in line
    assert held in h.active_tokens()  # left alone, as the warning says
    (event,) = _events(done)
    assert (event["target"], event["token_ids"], event["token_names"]) == (
        "app-deploy",
        [held],
        ["app-deploy"],
    )
    assert h.fakes.seed.manager_token not in done.stdout + done.stderr


def test_after_a_verified_rotation_nothing_is_said_and_no_list_is_paid(h: Harness) -> None:
    """Once a rotation verified: no warning anywhere, and a forced rotation lists no tokens."""
    assert _run(h, "run-once").code == 0
    h.fakes.gitlab.reset_calls()
    for args in (("plan",), ("check",), ("rotate", "app-deploy")):
        result = _run(h, *args)
        assert result.code == 0, result.stdout + result.stderr
        assert _warnings(result) == [], args
        assert _events(result) == []
    assert h.fakes.gitlab.call_counts().get(PROJECT_TOKENS, 0) == 0


def test_with_adopt_token_id_nothing_is_said(fakes: Fakes, tmp_path: Path) -> None:
    """adopt_token_id set: plan, check and run-once say nothing of untracked tokens."""
    h = Harness(fakes, tmp_path, targets=1)
    for args in (("plan",), ("check",), ("run-once",)):
        result = _run(h, *args)
        assert result.code == 0, result.stdout + result.stderr
        assert _warnings(result) == [], args
    assert h.fakes.gitlab.call_counts().get(PROJECT_TOKENS, 0) == 0


def test_several_untracked_tokens_are_all_listed_and_at_most_one_is_held(h: Harness) -> None:
    """Two untracked tokens: both named, the connection holds at most one, the hint asks for its id."""
    project = h.fakes.gitlab.state.resources[("project", h.fakes.seed.project_ids[0])]
    extra = h.fakes.gitlab.seed_resource_token(project, "ci-bot", ["read_api"], days=365)
    held = h.fakes.seed.adopt_token_ids[0]
    for args in (("plan",), ("check",)):
        result = _run(h, *args)
        assert result.code == 0, result.stdout
        (line,) = _warnings(result)
        assert f"holds 2 active tokens no target tracks: {held} app-deploy (expires" in line
        assert f", {extra.id} ci-bot (expires" in line
        assert "the connection holds at most one of them: add `adopt_token_id: ID` under targets[0]" in line


def test_tokens_another_target_tracks_are_not_listed(fakes: Fakes, tmp_path: Path) -> None:
    """A second target on the same project: the first target's current and pending tokens are not named."""
    h = Harness(fakes, tmp_path)
    config = _config(h)
    second = config["targets"][1]
    second["project"] = config["targets"][0]["project"]
    del second["adopt_token_id"]
    _write(h, config)
    assert (
        _run(h, "run-once", "--target", "app-deploy").code == 0
    )  # tracks the adopted token and its successor
    assert _warnings(_run(h, "plan", "--target", "api-deploy")) == []
    project = fakes.gitlab.state.resources[("project", fakes.seed.project_ids[0])]
    extra = fakes.gitlab.seed_resource_token(project, "by-hand", ["api"], days=10)
    (line,) = _warnings(_run(h, "plan", "--target", "api-deploy"))
    assert f"holds 1 active token no target tracks: {extra.id} by-hand (expires" in line
    assert f"`adopt_token_id: {extra.id}` under targets[1] (api-deploy)" in line


def test_a_failing_listing_is_a_warning_and_the_rotation_goes_on(h: Harness) -> None:
    """The list answers 500: plan, check and the first rotation warn with route and status, and exit 0."""
    # A first attempt whose push was refused leaves a revoked candidate: the next run has a
    # journal (no journal-lost listing), so the untracked listing is its only list call.
    h.fakes.infisical.faults.fail(PATCH, 400, times=1)
    refused = _run(h, "run-once")
    assert refused.code == 1
    # Not verified: adopt_token_id still applies, and the failed run's warning says to add it.
    (line,) = _warnings(refused)
    held = h.fakes.seed.adopt_token_ids[0]
    assert line.startswith("app-deploy: warn: project acme/app (1) holds 1 active token")
    assert f"add `adopt_token_id: {held}` under targets[0] (app-deploy)" in line
    h.fakes.gitlab.faults.fail(PROJECT_TOKENS, 500, times=None)
    failed = "could not list the tokens: GET /projects/:id/access_tokens 500"
    for args in (("plan",), ("check",)):
        result = _run(h, *args)
        (line,) = [w for w in result.stdout.splitlines() if failed in w]
        assert "add `adopt_token_id: ID` under targets[0] (app-deploy)" in line
    done = _run(h, "rotate", "app-deploy")
    assert done.code == 0, done.stdout + done.stderr
    assert f"app-deploy: warn: {failed}; the connection's previous token" in done.stdout
    assert "revoke that token by hand in GitLab" in done.stdout
    h.fakes.gitlab.faults.clear()
    assert h.held_works()


@pytest.mark.parametrize("kind", ["group", "service_account"])
def test_group_and_service_account_targets_warn_too(fakes: Fakes, tmp_path: Path, kind: str) -> None:
    """A group's and a service account's first rotation without adopt_token_id name the held token."""
    seeded = seed_kinds(fakes)
    h = Harness(fakes, tmp_path)
    config = _config(h)
    target = seeded.target(kind)
    del target["adopt_token_id"]
    config["targets"] = [target]
    _write(h, config)
    held, name = seeded.held[kind], target["name"]
    hint = f"add `adopt_token_id: {held}` under targets[0] ({name})"
    for args in (("plan",), ("check",)):
        result = _run(h, *args)
        assert result.code == 0, result.stdout + result.stderr
        (line,) = _warnings(result)
        assert f"holds 1 active token no target tracks: {held} {name} (expires" in line
        assert hint in line
    done = _run(h, "run-once")
    assert done.code == 0, done.stdout + done.stderr
    (line,) = _warnings(done)
    assert line.startswith(f"{name}: warn: ")
    assert f"{held} {name} (expires" in line
    assert seeded.works(kind)
    assert held in seeded.active(kind)
    (event,) = _events(done)
    assert event["token_ids"] == [held]


def _managed_by_a_group_token(fakes: Fakes, tmp_path: Path) -> tuple[Seeded, Harness, dict[str, str], Token]:
    """A group target without adopt_token_id whose manager token is one of that group's own tokens.

    Answers the seeded kinds, the harness, rotator's environment and the manager's token.
    """
    seeded = seed_kinds(fakes)
    group = fakes.gitlab.state.resources[("group", seeded.group_id)]
    h = Harness(fakes, tmp_path)
    config = _config(h)
    target = seeded.target("group")
    del target["adopt_token_id"]
    config["targets"] = [target]
    _write(h, config)
    manager = fakes.gitlab.seed_resource_token(group, "manager", ["api"], days=365, access_level=OWNER)
    env = {**h.environment(), "ROTATOR_GITLAB_TOKEN": manager.value, "COLUMNS": "1000"}
    return seeded, h, env, manager


def test_the_manager_token_is_never_offered_for_adoption(fakes: Fakes, tmp_path: Path) -> None:
    """A group target whose only untracked active token is the manager's own: nothing is said."""
    # The manager's credential is a token of the group itself; the connection's is tracked by no
    # one, so it alone is named.
    seeded, h, env, manager = _managed_by_a_group_token(fakes, tmp_path)
    result = run_in_process(h.arguments("plan"), env)
    (line,) = _warnings(result)
    assert str(seeded.held["group"]) in line
    assert f"{manager.id} manager" not in line


def test_the_daemons_first_rotation_logs_one_line_naming_the_tokens(h: Harness) -> None:
    """The daemon rotates a target for the first time: one target.untracked_tokens line, ids and names."""
    daemon_config(h, h.folder)
    d = DaemonProcess(h, api_token=None)
    d.wait_for(lambda e: e.get("event") == "rotation.finished", 30)
    assert d.stop() == 0
    held = h.fakes.seed.adopt_token_ids[0]
    (event,) = [e for e in d.events() if e.get("event") == "target.untracked_tokens"]
    assert (event["level"], event["target"]) == ("warning", "app-deploy")
    assert (event["token_ids"], event["token_names"]) == ([held], ["app-deploy"])
    assert "revoke that token by hand in GitLab" in event["hint"]
    assert h.fakes.seed.manager_token not in d.output()


def _crashed_first_rotation(h: Harness, step: str) -> RotationRecord:
    """A first run-once that dies just after recording ``step``: its unfinished rotation, its lease lapsed."""
    assert h.run("run-once", crash_after=step).code == CRASHED
    journal = wiring.read_journal(wiring.load(str(h.folder / "rotator.yaml"), {}), missing_ok=False)
    try:
        (rotation,) = journal.rotations()
    finally:
        journal.close()
    assert (rotation.outcome, rotation.step.value) == (Outcome.IN_PROGRESS, step)
    h.fakes.clock.advance(timedelta(minutes=11))  # the dead run's lease lapses
    return rotation


def test_the_token_a_crashed_first_rotation_may_have_created_is_never_offered(h: Harness) -> None:
    """Crash after PLANNED, the create applied: its token is recovery's to revoke, never one to adopt."""
    rotation = _crashed_first_rotation(h, "PLANNED")
    project = h.fakes.gitlab.state.resources[("project", h.fakes.seed.project_ids[0])]
    # GitLab applied the create whose answer the dead process never read.
    made = h.fakes.gitlab.seed_resource_token(project, rotation.token_name, ["api"], days=30)
    held = h.fakes.seed.adopt_token_ids[0]
    for args in (("plan",), ("check",)):
        (line,) = _warnings(_run(h, *args))
        assert f"holds 1 active token no target tracks: {held} app-deploy (expires" in line, args
        # By id and name, as tokens are listed ("4 app-deploy-..."): a bare id could be a date's digit.
        assert f"{made.id} {rotation.token_name}" not in line, line
        assert rotation.token_name not in line, line
    done = _run(h, "run-once")
    assert done.code == 0, done.stdout + done.stderr
    assert made.id not in h.active_tokens()  # recovery found it by name and revoked it
    (line,) = _warnings(done)
    assert f"holds 1 active token no target tracks: {held} app-deploy (expires" in line
    (event,) = _events(done)
    assert event["token_ids"] == [held]


def test_a_first_push_that_verifies_on_resume_says_adopt_token_id_comes_too_late(h: Harness) -> None:
    """Crash after PUSHED: the next run verifies without rotating; no words ask for adopt_token_id."""
    _crashed_first_rotation(h, "PUSHED")
    held = h.fakes.seed.adopt_token_ids[0]
    for args in (("plan",), ("check",)):
        (line,) = _warnings(_run(h, *args))
        assert f"holds 1 active token no target tracks: {held} app-deploy (expires" in line, args
        assert "adopt_token_id: " not in line, line
        assert "adding it now changes nothing; revoke that token by hand in GitLab" in line
    done = _run(h, "run-once")
    assert done.code == 0, done.stdout + done.stderr
    assert "rotation.finished" in done.stderr  # the resume verified the first push
    (line,) = _warnings(done)
    assert line.startswith(
        f"app-deploy: warn: project acme/app (1) holds 1 active token no target tracks: {held}"
    )
    assert "adding it now changes nothing; revoke that token by hand in GitLab" in line
    (event,) = _events(done)
    assert event["token_ids"] == [held]


def test_a_manager_token_that_could_not_be_read_is_never_offered_either(fakes: Fakes, tmp_path: Path) -> None:
    """The manager's own read fails (500): plan, check and the run name no token to adopt; they say why."""
    seeded, h, env, manager = _managed_by_a_group_token(fakes, tmp_path)
    target = seeded.target("group")
    fakes.gitlab.faults.fail(SELF, 500, times=None)
    unread = "could not read the manager token (never one to adopt): GET /personal_access_tokens/self 500"
    for args in (("plan",), ("check",)):
        result = run_in_process(h.arguments(*args), env)
        (line,) = [w for w in result.stdout.splitlines() if "untracked tokens" in w]
        assert unread in line
        assert f"{manager.id} manager (" not in line, line  # as tokens are listed: id, name, (expires
        assert "add `adopt_token_id: ID` under targets[0]" in line
    # The run reads it before its create, every attempt refused. (GitLab lets no group token mint
    # another group token: the create then fails, and the words are the failed first rotation's.)
    fakes.gitlab.faults.clear()
    fakes.gitlab.faults.fail(SELF, 500, times=5)
    done = run_in_process(h.arguments("run-once"), env)
    (line,) = [w for w in done.stdout.splitlines() if ": warn: " in w]
    assert line.startswith(f"{target['name']}: warn: {unread}; without adopt_token_id: add"), line
    assert manager.id in seeded.active("group")
