"""The upstream look (`plan`, `run-once --dry-run`, `status --live`) of group and service-account targets."""

from datetime import timedelta

import httpx
import pytest
import yaml

from rotator.testing._gitlab_state import MAINTAINER
from tests.cli_harness import CONNECTIONS, UA, Harness, Result, run_in_process
from tests.kinds import ACCOUNT_CONNECTION, GROUP_CONNECTION
from tests.test_target_kinds import Kinds, kinds  # noqa: F401 - a fixture


pytestmark = pytest.mark.slow

LOOKS = (("plan",), ("run-once", "--dry-run"), ("status", "--live"))
GROUP = "GET /api/v4/groups/:id"
MEMBER = "GET /api/v4/groups/:id/members/all/:user_id"
USER = "GET /api/v4/user"
GROUP_TOKEN = "GET /api/v4/groups/:id/access_tokens/:token_id"
ACCOUNT_TOKENS = "GET /api/v4/groups/:id/service_accounts/:user_id/personal_access_tokens"
#: Each kind's target: its name, its connection, and how its owner line begins.
KINDS = {
    "group": ("platform-sync", GROUP_CONNECTION, "group platform ({group})"),
    "service account": ("robot", ACCOUNT_CONNECTION, "service account {account} of group platform ({group})"),
}


@pytest.fixture
def looked(kinds: Kinds) -> Kinds:  # noqa: F811 - the fixture imported above
    """The three kinds' targets, the service account's home given by its group's path."""
    path = kinds.harness.folder / "rotator.yaml"
    config = yaml.safe_load(path.read_text())
    config["targets"][2]["service_account"]["group"] = "platform"
    path.write_text(yaml.safe_dump(config))
    return kinds


def _run(h: Harness, *args: str) -> Result:
    """``rotator ARGS`` in process, so wide that no finding wraps."""
    return run_in_process(h.arguments(*args), {**h.environment(), "COLUMNS": "1000"})


def _lines(result: Result, *starts: str) -> list[str]:
    """The stdout lines (indent stripped) that start with one of ``starts``."""
    return [line.strip() for line in result.stdout.splitlines() if line.strip().startswith(starts)]


def _owner(k: Kinds, kind: str) -> str:
    return KINDS[kind][2].format(group=k.group_id, account=k.account.id)


def _only_reads(h: Harness) -> dict[str, int]:
    """GitLab's calls per route, having checked that neither fake got a write (logins aside)."""
    routes = {r for s in (h.fakes.gitlab, h.fakes.infisical) for r in s.call_counts(user_agent=UA)}
    assert {r for r in routes if not r.startswith("GET ") and "/auth/" not in r} == set()
    return h.fakes.gitlab.call_counts(user_agent=UA)


def _reset(h: Harness) -> None:
    h.fakes.gitlab.reset_calls()
    h.fakes.infisical.reset_calls()


def _patch_by_hand(h: Harness, infisical: httpx.Client, connection: str, kind: str, value: str) -> None:
    """A person's PATCH of the connection to ``value``, keeping its type (group or personal)."""
    credentials = {"accessToken": value, "accessTokenType": kind, "instanceUrl": h.fakes.gitlab.url}
    answer = infisical.patch(
        f"/api/v1/app-connections/gitlab/{connection}", json={"credentials": credentials}
    )
    assert answer.status_code == 200, answer.text


def test_before_the_first_run_group_paths_are_resolved_upstream_and_not_remembered(looked: Kinds) -> None:
    """No journal yet: each kind's owner line (paths resolved by GET /groups/:id), its role, only reads."""
    h = looked.harness
    result = _run(h, "plan")
    assert result.code == 0, result.stdout + result.stderr
    may = "may create and revoke tokens"
    owners = "ok      project", "ok      group", "ok      service account"
    assert _lines(result, *owners) == [
        f"ok      project {h.fakes.seed.project_paths[0]} (1): the manager is maintainer (40): {may}",
        f"ok      {_owner(looked, 'group')}: the manager is owner (50): {may}",
        f"ok      {_owner(looked, 'service account')}: the manager is owner (50): {may}",
    ]
    for connection in (GROUP_CONNECTION, ACCOUNT_CONNECTION):
        assert _lines(result, f"info    connection {connection}: holds ")
    counts = _only_reads(h)
    # The group's path, twice (the group target's and the service account's home): resolved, then
    # the manager's membership (its own id read once).
    assert (counts[GROUP], counts[MEMBER], counts[USER]) == (2, 2, 1)
    _reset(h)
    again = _run(h, "plan")
    assert again.stdout == result.stdout  # the journal was not told: the paths are asked again
    assert _only_reads(h)[GROUP] == 2


@pytest.mark.parametrize("args", LOOKS)
def test_after_a_run_each_kind_gets_the_same_look(looked: Kinds, args: tuple[str, ...]) -> None:
    """After a rotation, per kind: the role, our push held, the current token active, the old one pending."""
    h = looked.harness
    assert h.run("run-once").code == 0
    _reset(h)
    result = _run(h, *args)
    assert result.code == 0, result.stdout + result.stderr
    assert _lines(result, "ok      gitlab: manager token: token ", "ok      infisical: credentials: accepted")
    for kind, (_, connection, _) in KINDS.items():
        current = max(looked.active(connection))
        old = looked.held[connection]
        assert f"ok      {_owner(looked, kind)}: the manager is owner (50)" in result.stdout
        assert _lines(result, f"ok      connection {connection}: holds our verified push ")
        assert _lines(result, f"ok      current token {current}: active on GitLab; expires ")
        assert _lines(result, f"info    pending revoke {old}: never used; revoked after ")
    counts = _only_reads(h)
    # From the journal's key: one role read per kind, then each token through its owner's route.
    assert (counts.get(GROUP, 0), counts[MEMBER]) == (0, 2)
    assert counts[GROUP_TOKEN] == 2
    assert counts[ACCOUNT_TOKENS] == 2  # no GET for one service-account token: its list, per token


@pytest.mark.parametrize(("kind", "token_type"), [("group", "group"), ("service account", "personal")])
def test_a_kinds_connection_written_by_hand_is_drift(
    looked: Kinds, infisical: httpx.Client, kind: str, token_type: str
) -> None:
    """Someone else's PATCH of a group's or service account's connection: DRIFT, exit 1, nothing written."""
    h = looked.harness
    name, connection, _ = KINDS[kind]
    assert h.run("run-once").code == 0
    other = h.fakes.gitlab.test_only_token(looked.held[connection])
    _patch_by_hand(h, infisical, connection, token_type, other.value)
    _reset(h)
    result = _run(h, "plan", "--target", name)
    assert result.code == 1, result.stdout + result.stderr
    [drift] = _lines(result, "DRIFT")
    assert drift.startswith(f"DRIFT   connection {connection}: drift: holds ")
    assert "not our verified push" in drift
    _only_reads(h)
    assert h.run("status", "--json").json()["targets"][1 if kind == "group" else 2]["drift"] is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_kinds_pending_token_used_after_its_retirement_shows_last_used_at(looked: Kinds, kind: str) -> None:
    """The old group or service-account token used 20 minutes after the rotation: warn, the revoke held."""
    h = looked.harness
    name, connection, _ = KINDS[kind]
    assert h.run("run-once").code == 0
    old = looked.held[connection]
    h.fakes.clock.advance(timedelta(minutes=20))
    value = h.fakes.gitlab.test_only_token(old).value
    assert httpx.get(f"{h.fakes.gitlab.url}/api/v4/user", headers={"PRIVATE-TOKEN": value}).status_code == 200
    result = _run(h, "plan", "--target", name)
    assert result.code == 0, result.stdout + result.stderr
    [warn] = _lines(result, "warn")
    assert warn.startswith(f"warn    pending revoke {old}: last used 20")
    assert f"its revoke would be held (`rotator rotate {name} --revoke-anyway`" in warn


def test_a_manager_below_owner_on_the_group_is_a_problem_naming_owner(looked: Kinds) -> None:
    """The manager only Maintainer of the group: the group's and its service account's lines say owner."""
    h = looked.harness
    gitlab = h.fakes.gitlab
    group = gitlab.test_only_token(looked.held[GROUP_CONNECTION]).resource
    assert group is not None
    gitlab.seed_member(group, gitlab.test_only_user("rotator-manager"), MAINTAINER)
    result = _run(h, "plan")
    assert result.code == 1, result.stdout + result.stderr
    below = "the manager's role 40 is below owner (50)"
    assert _lines(result, "PROBLEM") == [
        f"PROBLEM {_owner(looked, 'group')}: {below}",
        f"PROBLEM {_owner(looked, 'service account')}: {below}",
    ]
    assert (
        f"ok      project {h.fakes.seed.project_paths[0]} (1): the manager is maintainer (40)"
        in result.stdout
    )
    _only_reads(h)


def test_a_group_target_on_a_project_connection_is_a_problem_in_the_look(looked: Kinds) -> None:
    """The look judges the connection's type by the target's kind, as the run that refuses it does."""
    h = looked.harness
    path = h.folder / "rotator.yaml"
    config = yaml.safe_load(path.read_text())
    config["targets"] = [{"name": "wrong", "group": "platform", "connection_id": CONNECTIONS[1]}]
    path.write_text(yaml.safe_dump(config))
    result = _run(h, "plan")
    assert result.code == 1, result.stdout + result.stderr
    [problem] = _lines(result, "PROBLEM")
    assert problem.startswith(f"PROBLEM connection {CONNECTIONS[1]}: connection {CONNECTIONS[1]} has ")
    assert "accessTokenType 'project', but the target rotates group tokens (type 'group')" in problem
    _only_reads(h)
