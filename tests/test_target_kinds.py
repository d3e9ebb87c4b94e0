"""A group target, a service-account target and a project target rotate side by side through the CLI."""

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator.testing import Fakes
from rotator.testing._gitlab_state import OWNER, User
from tests.cli_harness import CONNECTIONS, Harness


pytestmark = pytest.mark.slow

GROUP_CONNECTION = "5b0e3f52-7a5e-4d5e-9d0f-1a2b3c4d5e6f"
ACCOUNT_CONNECTION = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"


@dataclass(frozen=True)
class Kinds:
    """The three targets' fakes: the group, the service account and what each connection held."""

    harness: Harness
    group_id: int
    account: User
    held: dict[str, int]  # connection id -> the token id it held at the start

    def active(self, connection: str) -> list[int]:
        """Active token ids of the connection's owner (test-only view)."""
        gitlab, now = self.harness.fakes.gitlab, self.harness.fakes.clock.now()
        with gitlab.lock:
            tokens = gitlab.state.tokens.values()
            if connection == GROUP_CONNECTION:
                mine = [t for t in tokens if t.resource is not None and t.resource.id == self.group_id]
                mine = [t for t in mine if t.resource is not None and t.resource.kind == "group"]
            else:
                mine = [t for t in tokens if t.user_id == self.account.id]
            return [t.id for t in mine if t.active(now)]

    def works(self, connection: str) -> bool:
        """Whether GitLab accepts what the connection holds now."""
        fakes = self.harness.fakes
        return fakes.gitlab.test_only_accepts(fakes.infisical.test_only_held_token(connection))


def _targets(fakes: Fakes, group_id: int, account: User) -> list[dict[str, Any]]:
    return [
        {"name": "app-deploy", "project": fakes.seed.project_paths[0], "connection_id": CONNECTIONS[0]},
        {"name": "platform-sync", "group": "platform", "connection_id": GROUP_CONNECTION},
        {
            "name": "robot",
            "service_account": {"user_id": account.id, "group": group_id},
            "connection_id": ACCOUNT_CONNECTION,
            "token": {"scopes": ["api", "read_user"], "lifetime": "30d"},
        },
    ]


@pytest.fixture
def kinds(fakes: Fakes, tmp_path: Path) -> Kinds:
    """The seed plus a group ``platform`` the manager owns, its group token and its service account."""
    gitlab, infisical = fakes.gitlab, fakes.infisical
    manager = gitlab.test_only_user("rotator-manager")
    group = gitlab.seed_resource("group", "platform")
    gitlab.seed_member(group, manager, OWNER)
    group_token = gitlab.seed_resource_token(group, "platform-sync", ["api"], days=30, access_level=OWNER)
    account = gitlab.seed_service_account(group)
    account_token = gitlab.seed_personal_token(account, ["api", "read_user"], days=30, name="robot")
    for token, connection, kind in (
        (group_token, GROUP_CONNECTION, "group"),
        (account_token, ACCOUNT_CONNECTION, "personal"),
    ):
        infisical.seed_connection(
            token.value, instance_url=gitlab.url, access_token_type=kind, connection_id=connection
        )
    harness = Harness(fakes, tmp_path)
    config = yaml.safe_load((tmp_path / "rotator.yaml").read_text())
    targets = _targets(fakes, group.id, account)
    targets[0]["adopt_token_id"] = fakes.seed.adopt_token_ids[0]
    targets[1]["adopt_token_id"] = group_token.id
    targets[2]["adopt_token_id"] = account_token.id
    config["targets"] = targets
    (tmp_path / "rotator.yaml").write_text(yaml.safe_dump(config))
    held = {GROUP_CONNECTION: group_token.id, ACCOUNT_CONNECTION: account_token.id}
    return Kinds(harness, group.id, account, held)


def test_three_kinds_rotate_side_by_side_through_run_once(kinds: Kinds) -> None:
    """One run-once rotates all three kinds; after grace the next revokes each adopted token."""
    h = kinds.harness
    first = h.run("run-once")
    assert first.code == 0, first.stderr
    for connection in (GROUP_CONNECTION, ACCOUNT_CONNECTION):
        assert kinds.works(connection)
        assert kinds.held[connection] in kinds.active(connection)
        assert len(kinds.active(connection)) == 2
    assert h.held_works(0)
    # The service account's new token is the same user's: no bot user was created for it.
    new_id = next(t for t in kinds.active(ACCOUNT_CONNECTION) if t != kinds.held[ACCOUNT_CONNECTION])
    assert h.fakes.gitlab.test_only_token(new_id).user_id == kinds.account.id
    # Each kind's new token says who manages it, for which target and owner kind.
    group_new = next(t for t in kinds.active(GROUP_CONNECTION) if t != kinds.held[GROUP_CONNECTION])
    group_says = h.fakes.gitlab.test_only_token(group_new).description or ""
    account_says = h.fakes.gitlab.test_only_token(new_id).description or ""
    assert group_says.startswith("Managed by rotator for target platform-sync (group platform")
    assert account_says.startswith(f"Managed by rotator for target robot (service account {kinds.account.id}")
    h.fakes.clock.advance(timedelta(minutes=61))
    second = h.run("run-once")
    assert second.code == 0, second.stderr
    for connection in (GROUP_CONNECTION, ACCOUNT_CONNECTION):
        assert kinds.active(connection) == [
            t for t in kinds.active(connection) if t != kinds.held[connection]
        ]
        assert len(kinds.active(connection)) == 1
        assert kinds.works(connection)
    history = h.run("history", "--target", "robot", "--json").json()
    assert history[0]["retired"][0]["evidence"] == "DELETE 204"
    status = h.run("status", "--json").json()
    assert {t["target"] for t in status["targets"]} == {"app-deploy", "platform-sync", "robot"}


def test_rotate_forces_a_group_target(kinds: Kinds) -> None:
    """``rotate`` on a group target makes a new group token and pushes it with type group."""
    h = kinds.harness
    assert h.run("run-once").code == 0
    before = set(kinds.active(GROUP_CONNECTION))
    forced = h.run("rotate", "platform-sync")
    assert forced.code == 0, forced.stderr
    assert set(kinds.active(GROUP_CONNECTION)) - before
    held = h.fakes.infisical.test_only_credentials(GROUP_CONNECTION)
    assert held["accessTokenType"] == "group"
    assert kinds.works(GROUP_CONNECTION)


def test_a_group_target_on_a_project_connection_is_refused(kinds: Kinds) -> None:
    """A group target whose connection says ``project`` fails naming the type; nothing is created."""
    h = kinds.harness
    config = yaml.safe_load((h.folder / "rotator.yaml").read_text())
    config["targets"] = [{"name": "wrong", "group": "platform", "connection_id": CONNECTIONS[1]}]
    (h.folder / "rotator.yaml").write_text(yaml.safe_dump(config))
    before = set(kinds.active(GROUP_CONNECTION))
    result = h.run("run-once")
    assert result.code == 1
    assert "accessTokenType 'project'" in result.stdout + result.stderr
    assert set(kinds.active(GROUP_CONNECTION)) == before
