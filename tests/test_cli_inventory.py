"""`rotator inventory` against the fakes: owners and days left in table and JSON, failures, reads only."""

import re

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.inventory import Inventory, Listed, ScopeReport, TokenKind
from rotator.core.model import TokenInfo
from rotator.doors import wiring
from rotator.doors.config import Config, parse_config
from rotator.doors.inventory import as_json, scopes_of, table, watching_of
from rotator.testing import Fakes, Fault
from rotator.testing._gitlab_state import OWNER, Resource
from tests.cli_harness import UA, Harness, Result, run_in_process


INFISICAL_VARIABLES = ("ROTATOR_INFISICAL_CLIENT_ID", "ROTATOR_INFISICAL_CLIENT_SECRET")


def _harness(fakes: Fakes, tmp_path: Path, **watch: Any) -> Harness:  # noqa: ANN401 - the watch: keys
    """The example's two targets, with ``watch`` as the config's ``watch:`` when given."""
    h = Harness(fakes, tmp_path)
    if watch:
        path = tmp_path / "rotator.yaml"
        config = yaml.safe_load(path.read_text())
        config["watch"] = watch
        path.write_text(yaml.safe_dump(config))
    return h


def _inventory(h: Harness, *args: str, without: tuple[str, ...] = INFISICAL_VARIABLES) -> Result:
    """``rotator inventory ARGS`` in process, wide, with no Infisical secret at all."""
    env = {k: v for k, v in h.environment({"COLUMNS": "1000"}).items() if k not in without}
    return run_in_process(h.arguments("inventory", *args), env)


def _rows(result: Result) -> dict[str, list[str]]:
    """The table's rows by token name (the columns split on runs of two spaces)."""
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("SCOPE"))
    rows = [re.split(r"\s{2,}", line) for line in lines[header + 1 :] if not line[0].isdigit()]
    return {row[4]: row for row in rows if len(row) > 4}


def _group(fakes: Fakes, path: str, parent: Resource | None = None) -> Resource:
    """A group the manager owns (a watched group's own tokens need an Owner)."""
    group = fakes.gitlab.state.find_resource("group", path) or fakes.gitlab.seed_resource(
        "group", path, parent=parent
    )
    fakes.gitlab.seed_member(group, fakes.gitlab.test_only_user("rotator-manager"), OWNER)
    return group


def _reads_only(h: Harness, result: Result) -> None:
    """The run sent GitLab nothing but GETs, and Infisical nothing at all."""
    assert result.code in {0, 1}, result.stderr
    assert {r for r in h.fakes.gitlab.call_counts(user_agent=UA) if not r.startswith("GET ")} == set()
    assert h.fakes.infisical.call_counts(user_agent=UA) == {}


def test_managed_adopted_and_unmanaged_tokens_in_the_table_and_the_json(fakes: Fakes, tmp_path: Path) -> None:
    """After run-once: current, adopted pending revoke, unmanaged expiring soon; an expired one unlisted."""
    h = _harness(fakes, tmp_path)
    project = fakes.gitlab.state.find_resource("project", "acme/app")
    assert project is not None
    soon = fakes.gitlab.seed_resource_token(project, "hand-made", ["read_api"], days=5)
    fakes.gitlab.seed_resource_token(project, "long-gone", ["api"], days=-2)
    assert h.run("run-once").code == 0
    fakes.gitlab.reset_calls()
    fakes.infisical.reset_calls()
    table = _inventory(h)
    _reads_only(h, table)
    assert table.code == 0, table.stderr
    rows = _rows(table)
    [new_name] = [name for name in rows if name.startswith("app-deploy-")]
    assert rows["app-deploy"][-1] == "app-deploy (pending revoke, adopted)"
    assert rows[new_name][-1] == "app-deploy (current)"
    assert rows["hand-made"][0:4] == ["project:acme/app", "project acme/app", "project", str(soon.id)]
    assert rows["hand-made"][-4:] == [
        soon.expires_at.isoformat() if soon.expires_at else "",
        "4d",
        "never",
        "unmanaged",
    ]
    assert "long-gone" not in table.stdout
    assert "5 active token(s) in 2 scope(s): 4 managed, 1 unmanaged (1 expiring within 14d" in table.stdout
    document = _inventory(h, "--json").json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["generated_at"])
    assert document["scopes"] == [
        {"scope": "project:acme/app", "error": None},
        {"scope": "project:acme/api", "error": None},
    ]
    tokens = {t["name"]: t for t in document["tokens"]}
    assert tokens["hand-made"] == {
        "scope": "project:acme/app",
        "kind": "project_access_token",
        "holder": "project acme/app",
        "id": soon.id,
        "name": "hand-made",
        "scopes": ["read_api"],
        "access_level": 40,
        "created_at": tokens["hand-made"]["created_at"],
        "expires_at": soon.expires_at.isoformat() if soon.expires_at else None,
        "days_left": 4,
        "last_used_at": None,
        "owner": "unmanaged",
        "target": None,
        "role": None,
        "adopted": None,
        "removed_target": None,
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", tokens["hand-made"]["created_at"])
    adopted = tokens["app-deploy"]
    assert (adopted["owner"], adopted["target"], adopted["role"], adopted["adopted"]) == (
        "managed",
        "app-deploy",
        "pending_revoke",
        True,
    )
    assert (tokens[new_name]["role"], tokens[new_name]["adopted"]) == ("current", False)
    assert tokens[new_name]["last_used_at"].endswith("Z")  # the self-check used it
    minted = fakes.gitlab.test_only_minted_values()
    assert not [v for v in minted if v in table.stdout + table.stderr]


def test_before_any_run_nothing_is_managed_and_no_journal_is_made(fakes: Fakes, tmp_path: Path) -> None:
    """No journal yet: the seeded tokens are unmanaged, and the journal's file is not created."""
    h = _harness(fakes, tmp_path)
    result = _inventory(h, "--json")
    assert result.code == 0, result.stderr
    assert {t["owner"] for t in result.json()["tokens"]} == {"unmanaged"}
    assert len(result.json()["tokens"]) == 2
    assert not (tmp_path / "state.db").exists()
    _reads_only(h, result)


def test_a_403_on_one_watched_group_fails_that_scope_only(fakes: Fakes, tmp_path: Path) -> None:
    """Group acme's projects answer 403: exit 1, one stderr line naming it; group other is listed whole."""
    _group(fakes, "acme")
    other = _group(fakes, "other")
    svc = fakes.gitlab.seed_resource("project", "other/svc", parent=other)
    fakes.gitlab.seed_resource_token(svc, "svc-ci", ["read_api"], days=60)
    h = _harness(fakes, tmp_path, groups=["acme", "other"])
    fakes.gitlab.faults.add(Fault("GET /api/v4/groups/:id/projects", "fail", status=403))
    result = _inventory(h)
    assert result.code == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("rotator inventory:")]
    assert failed == [
        "rotator inventory: group:acme: group acme: gitlab GET /groups/:id/projects -> 403: 403 Forbidden"
    ]
    assert _rows(result)["svc-ci"][0:2] == ["group:other", "project other/svc"]
    assert "1 scope(s) not listed whole" in result.stdout
    _reads_only(h, result)


def test_include_subgroups_decides_whether_a_subgroups_tokens_are_listed(
    fakes: Fakes, tmp_path: Path
) -> None:
    """watch.include_subgroups: true lists acme/sub's project's token; false leaves it out."""
    acme = _group(fakes, "acme")
    sub = fakes.gitlab.seed_resource("group", "acme/sub", parent=acme)
    tool = fakes.gitlab.seed_resource("project", "acme/sub/tool", parent=sub)
    fakes.gitlab.seed_resource_token(tool, "tool-ci", ["read_api"])
    deep = _inventory(_harness(fakes, tmp_path, groups=["acme"]))
    assert _rows(deep)["tool-ci"][0:2] == ["group:acme", "project acme/sub/tool"]
    shallow = _inventory(_harness(fakes, tmp_path, groups=["acme"], include_subgroups=False))
    assert shallow.code == 0, shallow.stderr
    assert "tool-ci" not in shallow.stdout


def test_target_lists_that_targets_scope_alone(fakes: Fakes, tmp_path: Path) -> None:
    """--target api-deploy: acme/api's tokens only, no watch: scope; an unknown name exits 2 naming it."""
    h = _harness(fakes, tmp_path, projects=["acme/app"])
    document = _inventory(h, "--json", "--target", "api-deploy").json()
    assert [s["scope"] for s in document["scopes"]] == ["project:acme/api"]
    assert [t["name"] for t in document["tokens"]] == ["api-deploy"]
    unknown = _inventory(h, "--target", "nope")
    assert unknown.code == 2
    assert "--target: no target named 'nope'" in unknown.stderr
    assert "app-deploy, api-deploy" in unknown.stderr


def test_a_bad_watch_key_exits_2_naming_it(fakes: Fakes, tmp_path: Path) -> None:
    """watch.interval under an hour: inventory and validate exit 2 naming the key; a good watch: validates."""
    h = _harness(fakes, tmp_path, groups=["acme"], interval="10m")
    for result in (_inventory(h), h.run("validate")):
        assert result.code == 2
        assert "watch.interval: must be from 1h to 30d, not 10m" in result.stderr
    good = _harness(fakes, tmp_path, groups=["acme"], projects=["acme/tools", 42], warn_before="7d")
    assert good.run("validate").code == 0


def test_the_manager_token_is_the_only_secret_it_needs(fakes: Fakes, tmp_path: Path) -> None:
    """Without ROTATOR_GITLAB_TOKEN: exit 2 naming it, and nothing sent."""
    h = _harness(fakes, tmp_path)
    result = _inventory(h, without=(*INFISICAL_VARIABLES, "ROTATOR_GITLAB_TOKEN"))
    assert result.code == 2
    assert "ROTATOR_GITLAB_TOKEN: is not set" in result.stderr
    assert fakes.gitlab.call_counts(user_agent=UA) == {}


_CONNECTIONS = [f"3c90c3cc-0d44-4b50-8888-{n:012d}" for n in range(6)]


def _config(projects: list[str], groups: list[str], watched: list[str]) -> Config:
    targets = [
        {"name": f"t{i}", "project": p, "connection_id": _CONNECTIONS[i], "token": {"scopes": ["api"]}}
        for i, p in enumerate(projects)
    ]
    targets += [
        {"name": f"g{i}", "group": g, "connection_id": _CONNECTIONS[3 + i], "token": {"scopes": ["api"]}}
        for i, g in enumerate(groups)
    ]
    watch = {"groups": watched, "projects": projects[:1]}
    return parse_config({"gitlab": {"url": "https://gitlab.example.com"}, "targets": targets, "watch": watch})


@given(
    projects=st.lists(st.sampled_from(["acme/app", "acme/api", "42"]), min_size=1, max_size=3),
    groups=st.lists(st.sampled_from(["acme", "7"]), max_size=2, unique=True),
    watched=st.lists(st.sampled_from(["acme", "acme/sub", "7"]), max_size=3, unique=True),
)
def test_scopes_come_once_each_targets_first(
    projects: list[str], groups: list[str], watched: list[str]
) -> None:
    """scopes_of: each label once, first place kept, targets' first in config order; watched groups whole."""
    config = _config(projects, groups, watched)
    scopes = scopes_of(config)
    labels = [s.label for s in scopes]
    written = [*(f"project:{p}" for p in projects), *(f"group:{g}" for g in groups)]
    written += [*(f"group:{g}" for g in watched), f"project:{projects[0]}"]
    assert labels == list(dict.fromkeys(written))
    assert {s.label for s in scopes if s.whole_group} == {f"group:{g}" for g in watched}
    assert [s.label for s in scopes_of(config, "t0")] == [f"project:{projects[0]}"]


def test_the_tables_dates_are_utc_whatever_offset_gitlab_answers_in() -> None:
    """A GitLab set to a time zone answers +09:00: CREATED and LAST USED are the UTC dates, as the JSON's."""
    tokyo = timezone(timedelta(hours=9))
    info = TokenInfo(
        7,
        "ci",
        active=True,
        revoked=False,
        expires_at=date(2026, 2, 1),
        created_at=datetime(2026, 1, 2, 8, 0, tzinfo=tokyo),  # 2026-01-01T23:00:00Z
        last_used_at=datetime(2026, 1, 3, 1, 30, tzinfo=tokyo),  # 2026-01-02T16:30:00Z
    )
    at = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    listed = Listed("project:acme/app", TokenKind.PROJECT, "project acme/app", info, None)
    inventory = Inventory(at, (ScopeReport("project:acme/app", (listed,)),))
    [row] = [line for line in table(inventory, timedelta(days=14), 1000).splitlines() if " ci " in line]
    assert "  2026-01-01  2026-02-01  " in row
    assert "  2026-01-02  unmanaged" in row
    assert as_json(inventory)["tokens"][0]["created_at"] == "2026-01-01T23:00:00Z"


def test_a_removed_targets_current_token_is_unmanaged_and_its_pending_revoke_managed(
    fakes: Fakes, tmp_path: Path
) -> None:
    """A target taken out of the config: nothing rotates its current token, so it counts as unmanaged."""
    h = _harness(fakes, tmp_path, projects=["acme/api"])
    assert h.run("run-once").code == 0
    path = tmp_path / "rotator.yaml"
    config = yaml.safe_load(path.read_text())
    config["targets"] = [t for t in config["targets"] if t["name"] != "api-deploy"]
    path.write_text(yaml.safe_dump(config))
    result = _inventory(h, "--json")
    assert result.code == 0, result.stderr
    api = {t["id"]: t for t in result.json()["tokens"] if t["scope"] == "project:acme/api"}
    adopted = fakes.seed.adopt_token_ids[1]
    [current] = [t for i, t in api.items() if i != adopted]
    assert (current["owner"], current["target"], current["role"], current["removed_target"]) == (
        "unmanaged",
        "api-deploy",
        "current",
        True,
    )
    assert (api[adopted]["owner"], api[adopted]["role"], api[adopted]["removed_target"]) == (
        "managed",
        "pending_revoke",
        True,
    )
    rows = _rows(_inventory(h))
    assert rows[current["name"]][-1] == "unmanaged (was api-deploy's current; target removed)"
    assert rows["api-deploy"][-1] == "api-deploy (pending revoke, adopted, target removed)"


def test_the_daemons_watch_lists_the_configured_scopes_and_expiry_watch_false_turns_it_off(
    fakes: Fakes, tmp_path: Path
) -> None:
    """The daemon's watch takes this config's inventory each watch.interval; expiry_watch: false, none."""
    h = _harness(fakes, tmp_path, interval="6h", warn_before="3d")
    env = h.environment()
    config = wiring.load(str(tmp_path / "rotator.yaml"), env)
    rt = wiring.build(config, env)
    try:
        watching = watching_of(config, rt)
        assert watching is not None
        assert (watching.interval, watching.warn_before) == (timedelta(hours=6), timedelta(days=3))
        taken = watching.take()
        assert [s.scope for s in taken.scopes] == ["project:acme/app", "project:acme/api"]
        assert {t.info.id for t in taken.tokens()} == set(fakes.seed.adopt_token_ids)
        off = config.model_copy(update={"watch": config.watch.model_copy(update={"expiry_watch": False})})
        assert watching_of(off, rt) is None
    finally:
        rt.close()
