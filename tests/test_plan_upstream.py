"""`plan`, `run-once --dry-run` and `status --live` look upstream (the fakes, over HTTP) and write nothing."""

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, UA, Harness, Result, patch_by_hand, run_in_process


pytestmark = pytest.mark.slow

SELF = "GET /api/v4/personal_access_tokens/self"
UNKNOWN_CONNECTION = "00000000-0000-4000-8000-000000000000"
#: The looks: each reads the same things upstream.
LOOKS = (("plan",), ("run-once", "--dry-run"), ("status", "--live"))


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """Both example targets against the fakes, grace 1h."""
    return Harness(fakes, tmp_path)


def _run(h: Harness, *args: str, env: dict[str, str] | None = None) -> Result:
    """``rotator ARGS`` in process, so wide that no finding wraps (default: the fakes' environment)."""
    return run_in_process(h.arguments(*args), {**(env or h.environment()), "COLUMNS": "1000"})


def _lines(result: Result, *levels: str) -> list[str]:
    """The stdout lines (indent stripped) that start with one of ``levels``."""
    return [line.strip() for line in result.stdout.splitlines() if line.strip().startswith(levels)]


def _routes(h: Harness) -> set[str]:
    """Every route rotator sent to either fake so far."""
    return {
        route for server in (h.fakes.gitlab, h.fakes.infisical) for route in server.call_counts(user_agent=UA)
    }


def _only_reads(h: Harness) -> None:
    """Only GETs and Infisical logins only: no create, PATCH, DELETE (nor rotate) on any route."""
    writes = {r for r in _routes(h) if not r.startswith("GET ") and "/auth/" not in r}
    assert writes == set(), writes


def _reset(h: Harness) -> None:
    h.fakes.gitlab.reset_calls()
    h.fakes.infisical.reset_calls()


def test_before_the_first_run_the_look_shows_credentials_roles_and_connections(h: Harness) -> None:
    """With no journal yet: the manager token, the login, each project's role and connection, all reads."""
    result = _run(h, "plan")
    assert result.code == 0, result.stdout + result.stderr
    assert _lines(result, "ok", "info") == [
        _lines(result, "ok      gitlab: manager token: token")[0],
        _lines(result, "ok      infisical: credentials: accepted")[0],
        "ok      project acme/app (1): the manager is maintainer (40): may create and revoke tokens",
        _lines(result, f"info    connection {CONNECTIONS[0]}: holds ")[0],
        "ok      project acme/api (2): the manager is maintainer (40): may create and revoke tokens",
        _lines(result, f"info    connection {CONNECTIONS[1]}: holds ")[0],
    ]
    assert "no push verified yet" in result.stdout
    _only_reads(h)
    assert h.mutations() == 0


@pytest.mark.parametrize("args", LOOKS)
def test_after_a_run_each_look_shows_our_push_the_current_token_and_the_pending_revoke(
    h: Harness, args: tuple[str, ...]
) -> None:
    """After a rotation: our verified push held, the current token active, the old one pending, no write."""
    assert h.run("run-once").code == 0
    _reset(h)
    result = _run(h, *args)
    assert result.code == 0, result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    adopted = h.fakes.seed.adopt_token_ids[0]
    current = max(h.active_tokens(0))
    assert f"ok connection {CONNECTIONS[0]}: holds our verified push" in text
    assert f"ok current token {current}: active on GitLab; expires" in text
    assert f"info pending revoke {adopted}: never used; revoked after" in text
    _only_reads(h)
    assert h.mutations() == 0


@pytest.mark.parametrize("args", LOOKS)
def test_a_connection_written_by_hand_is_shown_as_drift_and_exits_1(
    h: Harness, infisical: httpx.Client, args: tuple[str, ...]
) -> None:
    """Someone else's PATCH, before any run met it: the look says drift, with both hashes, and exits 1."""
    assert h.run("run-once").code == 0
    other = h.fakes.gitlab.test_only_token(h.fakes.seed.adopt_token_ids[0])
    assert patch_by_hand(infisical, h.fakes.gitlab.url, CONNECTIONS[0], other.value).status_code == 200
    _reset(h)
    result = _run(h, *args)
    assert result.code == 1, result.stdout + result.stderr
    [drift] = _lines(result, "DRIFT")
    assert drift.startswith(f"DRIFT   connection {CONNECTIONS[0]}: drift: holds ")
    text = " ".join(result.stdout.split())
    assert "not our verified push" in text
    assert "a run would freeze the target (nothing created or revoked)" in text
    assert f"ok      connection {CONNECTIONS[1]}: holds our verified push" in result.stdout
    _only_reads(h)
    # The journal was only read: the next status still knows nothing of the drift.
    assert h.run("status", "--json").json()["targets"][0]["drift"] is None


def test_status_live_json_carries_the_findings_per_target(h: Harness, infisical: httpx.Client) -> None:
    """`status --live --json`: the journal's document plus "live", whose drifted target is failing."""
    assert h.run("run-once").code == 0
    other = h.fakes.gitlab.test_only_token(h.fakes.seed.adopt_token_ids[0])
    patch_by_hand(infisical, h.fakes.gitlab.url, CONNECTIONS[0], other.value)
    result = _run(h, "status", "--live", "--json")
    assert result.code == 1, result.stderr
    document = result.json()
    assert set(document) == {"as_of", "targets", "removed", "live"}
    live = document["live"]
    assert live["failing"] is True
    assert [t["failing"] for t in live["targets"]] == [True, False]
    levels = [f["level"] for f in live["targets"][0]["findings"]]
    assert "DRIFT" in levels
    assert [f["level"] for f in live["credentials"]] == ["ok", "ok"]


@pytest.mark.parametrize("args", [("plan",), ("run-once", "--dry-run")])
def test_a_wrong_gitlab_token_is_named_with_its_status_and_exits_1(h: Harness, args: tuple[str, ...]) -> None:
    """GitLab's 401 names the variable and the status; the projects are skipped, /self asked once."""
    env = h.environment({"ROTATOR_GITLAB_TOKEN": "glpat-NotTheManagerToken0000"})
    result = _run(h, *args, env=env)
    assert result.code == 1, result.stdout + result.stderr
    skipped = "not checked: GitLab refused ROTATOR_GITLAB_TOKEN (above)"
    assert _lines(result, "PROBLEM", "skip") == [
        (
            "PROBLEM gitlab: manager token: GitLab refused the token in ROTATOR_GITLAB_TOKEN"
            " (401: 401 Unauthorized): fix ROTATOR_GITLAB_TOKEN"
        ),
        f"skip    project acme/app: {skipped}",
        f"skip    project acme/api: {skipped}",
    ]
    assert h.fakes.gitlab.call_counts(user_agent=UA) == {SELF: 1}
    assert "NotTheManagerToken" not in result.stdout + result.stderr
    assert h.mutations() == 0


def test_a_wrong_infisical_token_is_named_with_its_status_and_exits_1(h: Harness) -> None:
    """A static Infisical token that does not verify: 403 named with its variable; connections skipped."""
    env = h.environment({"ROTATOR_INFISICAL_TOKEN": "not-a-jwt"})
    del env["ROTATOR_INFISICAL_CLIENT_ID"], env["ROTATOR_INFISICAL_CLIENT_SECRET"]
    result = _run(h, "plan", env=env)
    assert result.code == 1, result.stdout + result.stderr
    [problem] = _lines(result, "PROBLEM")
    refused = "Infisical refused the token in ROTATOR_INFISICAL_TOKEN (403: TokenError"
    assert problem.startswith(f"PROBLEM infisical: credentials: {refused}")
    skipped = "not checked: Infisical refused ROTATOR_INFISICAL_TOKEN (above)"
    assert _lines(result, "skip") == [
        f"skip    connection {CONNECTIONS[0]}: {skipped}",
        f"skip    connection {CONNECTIONS[1]}: {skipped}",
    ]
    _only_reads(h)


def test_an_unknown_connection_is_named_under_its_target_and_exits_1(h: Harness) -> None:
    """Infisical's 404 names the target's config key and status; the other target is still looked at."""
    path = h.folder / "rotator.yaml"
    config = yaml.safe_load(path.read_text())
    config["targets"][1]["connection_id"] = UNKNOWN_CONNECTION
    path.write_text(yaml.safe_dump(config))
    result = _run(h, "plan")
    assert result.code == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("api-deploy: planned:")))
    assert lines[at + 2] == (
        f"  PROBLEM connection {UNKNOWN_CONNECTION}: targets[1].connection_id: {UNKNOWN_CONNECTION}"
        " not found in Infisical, or the identity may not read it (404)"
    )
    assert f"connection {CONNECTIONS[0]}: holds" in result.stdout
    _only_reads(h)


def test_a_pending_token_used_after_its_retirement_shows_last_used_at(h: Harness) -> None:
    """The old token used 20 minutes after the rotation: its last_used_at, and that the revoke would hold."""
    assert h.run("run-once").code == 0
    old = h.fakes.seed.adopt_token_ids[0]
    h.fakes.clock.advance(timedelta(minutes=20))
    value = h.fakes.gitlab.test_only_token(old).value
    assert httpx.get(f"{h.fakes.gitlab.url}/api/v4/user", headers={"PRIVATE-TOKEN": value}).status_code == 200
    _reset(h)
    result = _run(h, "plan")
    assert result.code == 0, result.stdout + result.stderr  # a warning: the run holds it, later
    [warn] = _lines(result, "warn")
    assert warn.startswith(f"warn    pending revoke {old}: last used 20")
    assert "after it was retired: its revoke would be held" in " ".join(result.stdout.split())
    _only_reads(h)


def test_a_current_token_revoked_by_hand_is_a_problem(h: Harness) -> None:
    """The current token revoked outside rotator: the look says GitLab has it inactive, exit 1."""
    assert h.run("run-once").code == 0
    current = max(h.active_tokens(1))
    project = h.fakes.seed.project_ids[1]
    revoked = httpx.delete(
        f"{h.fakes.gitlab.url}/api/v4/projects/{project}/access_tokens/{current}",
        headers={"PRIVATE-TOKEN": h.fakes.seed.manager_token},
    )
    assert revoked.status_code == 204
    result = _run(h, "plan", "--target", "api-deploy")
    assert result.code == 1, result.stdout
    [problem] = _lines(result, "PROBLEM")
    assert problem.startswith(f"PROBLEM current token {current}: GitLab says revoked=True active=False")
    assert "app-deploy" not in result.stdout


def test_status_without_live_needs_no_secret_and_calls_nothing(h: Harness) -> None:
    """Offline status: no ROTATOR_* secret in the environment, no request, exit 0."""
    assert h.run("run-once").code == 0
    _reset(h)
    env = {
        k: v
        for k, v in h.environment().items()
        if k.startswith("ROTATOR_TEST") or not k.startswith("ROTATOR_")
    }
    assert not any("TOKEN" in k or "CLIENT" in k for k in env)
    result = _run(h, "status", env=env)
    assert result.code == 0, result.stderr
    assert "upstream" not in result.stdout
    assert h.calls() == 0


def test_status_live_needs_the_secrets_and_a_journal(h: Harness) -> None:
    """`status --live` without a secret is exit 2 naming it; before the first run, exit 2 and no file."""
    env = h.environment()
    del env["ROTATOR_GITLAB_TOKEN"]
    assert h.run("run-once").code == 0
    missing = _run(h, "status", "--live", env=env)
    assert missing.code == 2
    assert "ROTATOR_GITLAB_TOKEN" in missing.stderr
    (h.folder / "state.db").unlink()
    for leftover in h.folder.glob("state.db-*"):
        leftover.unlink()
    before = sorted(p.name for p in h.folder.iterdir())
    none_yet = h.run("status", "--live")
    assert none_yet.code == 2
    assert "no journal" in none_yet.stderr
    assert sorted(p.name for p in h.folder.iterdir()) == before


PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"


def _stopped_at_pushed(h: Harness) -> None:
    """A forced rotation of app-deploy whose process died right after PUSHED was recorded."""
    assert h.run("run-once").code == 0
    assert h.run("run-once", "--force", "--target", "app-deploy", crash_after="PUSHED").code == 70


def test_a_rotation_stopped_at_pushed_is_judged_by_its_patch_hash_and_drift_agrees_with_the_run(
    h: Harness, infisical: httpx.Client
) -> None:
    """At PUSHED a third hash is drift (the resume re-reads and freezes), exit 1; the run agrees."""
    _stopped_at_pushed(h)
    other = h.fakes.gitlab.test_only_token(h.fakes.seed.adopt_token_ids[0])
    assert patch_by_hand(infisical, h.fakes.gitlab.url, CONNECTIONS[0], other.value).status_code == 200
    result = _run(h, "plan", "--target", "app-deploy")
    assert result.code == 1, result.stdout + result.stderr
    [drift] = _lines(result, "DRIFT")
    assert drift.startswith(f"DRIFT   connection {CONNECTIONS[0]}: drift: holds ")
    assert "neither our PATCH" in drift
    h.fakes.clock.advance(timedelta(minutes=11))  # the crashed run's lease lapses
    run = h.run("run-once")
    assert run.code == 1
    assert "app-deploy: failed: drift" in run.stdout


def test_a_rotation_stopped_at_pushed_holding_our_patch_is_ok_and_verified_next(h: Harness) -> None:
    """At PUSHED with our PATCH's hash held: ok, the next run verifies it (and does), exit 0."""
    _stopped_at_pushed(h)
    result = _run(h, "plan", "--target", "app-deploy")
    assert result.code == 0, result.stdout + result.stderr
    assert f"ok      connection {CONNECTIONS[0]}: holds our PATCH " in result.stdout
    assert "the next run verifies it" in " ".join(result.stdout.split())
    assert _lines(result, "warn") == []
    h.fakes.clock.advance(timedelta(minutes=11))
    assert h.run("run-once").code == 0


def test_revokes_alone_judge_the_connection_strictly_though_a_token_is_possibly_held(
    h: Harness, infisical: httpx.Client
) -> None:
    """Revokes alone due, tokens possibly held: another hash is drift (the revoke freezes); the run agrees."""
    assert h.run("run-once").code == 0
    h.fakes.infisical.faults.fail(PATCH, 500, times=None)
    assert h.run("rotate", "app-deploy").code == 1  # both pushes lost: their tokens possibly held
    h.fakes.infisical.faults.clear()
    other = h.fakes.gitlab.test_only_token(h.fakes.seed.adopt_token_ids[0])
    assert patch_by_hand(infisical, h.fakes.gitlab.url, CONNECTIONS[0], other.value).status_code == 200
    h.fakes.clock.advance(timedelta(hours=2))  # the first run's old token is past its grace
    result = _run(h, "plan", "--target", "app-deploy")
    assert result.code == 1, result.stdout + result.stderr
    [drift] = _lines(result, "DRIFT")
    text = " ".join(result.stdout.split())
    assert "the next run's revokes accept only our verified push" in text
    assert "a run would freeze the target (nothing created or revoked)" in text
    assert drift.startswith(f"DRIFT   connection {CONNECTIONS[0]}: drift: holds ")
    held = _lines(result, "info    possibly held token")
    assert len(held) == 2, result.stdout
    assert all(": active on GitLab; expires " in line for line in held)
    run = h.run("run-once")
    assert run.code == 1
    assert "app-deploy: failed: drift" in run.stdout


def test_a_frozen_target_holding_our_push_again_is_still_drift(h: Harness, infisical: httpx.Client) -> None:
    """Frozen, then the connection's row restored to our push: DRIFT, saying so, until --take-over."""
    assert h.run("run-once").code == 0
    row = h.fakes.infisical.connections[CONNECTIONS[0]]
    ours = row.encrypted  # credentialsHash is sha256 of this: a PATCH of the same value makes another
    other = h.fakes.gitlab.test_only_token(h.fakes.seed.adopt_token_ids[0])
    patch_by_hand(infisical, h.fakes.gitlab.url, CONNECTIONS[0], other.value)
    assert h.run("rotate", "app-deploy").code == 1  # frozen by drift
    with h.fakes.infisical.lock:  # as a restore of Infisical's database from a backup would
        row.encrypted = ours
    result = _run(h, "plan", "--target", "app-deploy")
    assert result.code == 1, result.stdout + result.stderr
    [drift] = _lines(result, "DRIFT")
    text = " ".join(result.stdout.split())
    assert drift.startswith(f"DRIFT   connection {CONNECTIONS[0]}: drift: frozen since ")
    assert "the connection holds our push " in text
    assert "again; nothing is created or revoked until `rotator rotate app-deploy --take-over`" in text


def test_a_candidate_token_left_at_created_is_shown_with_its_state(h: Harness) -> None:
    """A rotation stopped at CREATED: its never-pushed token is shown as GitLab has it, read only."""
    assert h.run("run-once").code == 0
    assert h.run("run-once", "--force", "--target", "app-deploy", crash_after="CREATED").code == 70
    _reset(h)
    result = _run(h, "plan", "--target", "app-deploy")
    [candidate] = _lines(result, "info    candidate token")
    assert ": active on GitLab; expires " in candidate
    assert candidate.endswith("never pushed")
    _only_reads(h)
