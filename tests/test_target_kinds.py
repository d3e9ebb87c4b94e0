"""A group target, a service-account target and a project target rotate side by side through the CLI."""

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import yaml

from rotator.testing import Fakes
from rotator.testing._gitlab_state import User
from tests.cli_harness import CONNECTIONS, UA, Harness
from tests.kinds import ACCOUNT_CONNECTION, CONNECTION_OF, CREATE_ROUTES, GROUP_CONNECTION, Seeded, seed_kinds


pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Kinds:
    """The three targets' fakes, seen by connection: the harness and what :func:`seed_kinds` added."""

    harness: Harness
    seeded: Seeded

    @property
    def group_id(self) -> int:
        """The group ``platform``'s id."""
        return self.seeded.group_id

    @property
    def account(self) -> User:
        """The service account."""
        return self.seeded.account

    @property
    def held(self) -> dict[str, int]:
        """Connection id -> the token id it held at the start."""
        return {CONNECTION_OF[kind]: token for kind, token in self.seeded.held.items()}

    def active(self, connection: str) -> list[int]:
        """Active token ids of the connection's owner (test-only view)."""
        return self.seeded.active(_KIND_OF[connection])

    def works(self, connection: str) -> bool:
        """Whether GitLab accepts what the connection holds now."""
        return self.seeded.works(_KIND_OF[connection])


_KIND_OF = {connection: kind for kind, connection in CONNECTION_OF.items()}


#: A test run on both journals: the file, and a fresh PostgreSQL database (``journal_url``, conftest).
BOTH_JOURNALS = pytest.mark.parametrize("journal_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def kinds(fakes: Fakes, tmp_path: Path, journal_url: str | None) -> Kinds:
    """The seed plus a group ``platform`` the manager owns, its group token and its service account."""
    seeded = seed_kinds(fakes)
    harness = Harness(fakes, tmp_path)
    if journal_url is not None:
        harness.state_url = journal_url
        harness.write_config()
    config = yaml.safe_load((tmp_path / "rotator.yaml").read_text())
    config["targets"] = seeded.targets()
    (tmp_path / "rotator.yaml").write_text(yaml.safe_dump(config))
    return Kinds(harness, seeded)


@BOTH_JOURNALS
def test_three_kinds_rotate_side_by_side_through_run_once(kinds: Kinds, journal_url: str | None) -> None:
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
    if journal_url is not None:  # the journal is the database's, its keys naming each kind
        assert not (h.folder / "state.db").exists()
        with psycopg.connect(journal_url) as db:
            keys = {key.split("|")[1] for (key,) in db.execute("SELECT key FROM targets")}
        project = h.fakes.seed.project_ids[0]
        account = f"service_account:{kinds.account.id}@group:{kinds.seeded.group_id}"
        assert keys == {str(project), f"group:{kinds.seeded.group_id}", account}


@BOTH_JOURNALS
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


def test_each_kind_asks_once_more_under_a_lifetime_cap(kinds: Kinds) -> None:
    """An 8-day cap: each kind's create is refused (a service account's with 422), then asked once more."""
    h = kinds.harness
    h.fakes.gitlab.set_max_lifetime(8)
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    limit = h.fakes.clock.now().date() + timedelta(days=8)
    statuses: dict[str, list[int | None]] = {}
    for route in CREATE_ROUTES.values():
        for call in h.fakes.gitlab.calls(route, user_agent=UA):
            statuses.setdefault(route, []).append(call.status)
    assert statuses == {
        CREATE_ROUTES["project"]: [400, 201],
        CREATE_ROUTES["group"]: [400, 201],
        CREATE_ROUTES["service_account"]: [422, 201],
    }
    for connection in (GROUP_CONNECTION, ACCOUNT_CONNECTION):
        new = [t for t in kinds.active(connection) if t != kinds.held[connection]]
        assert len(new) == 1
        assert h.fakes.gitlab.test_only_token(new[0]).expires_at == limit - timedelta(days=1)
        assert kinds.works(connection)


def test_an_infisical_older_than_group_tokens_is_explained(kinds: Kinds) -> None:
    """An Infisical refusing type group (422): the push fails saying to upgrade it; the old token stays."""
    h = kinds.harness
    h.fakes.infisical.accept_group_tokens = False
    result = h.run("run-once")
    assert result.code == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("platform-sync"))
    assert "received 'group'" in line
    assert "upgrade Infisical" in line
    assert kinds.works(GROUP_CONNECTION)
    assert kinds.held[GROUP_CONNECTION] in kinds.active(GROUP_CONNECTION)
    assert kinds.works(ACCOUNT_CONNECTION)  # the other kinds rotate as usual
    assert h.held_works(0)


def test_check_explains_a_group_target_on_a_project_connection(kinds: Kinds) -> None:
    """``check``: a group target on a ``project`` connection (an older Infisical's only choice) says why."""
    h = kinds.harness
    config = yaml.safe_load((h.folder / "rotator.yaml").read_text())
    config["targets"] = [{"name": "wrong", "group": "platform", "connection_id": CONNECTIONS[1]}]
    (h.folder / "rotator.yaml").write_text(yaml.safe_dump(config))
    result = h.run("check")
    assert result.code == 1
    problem = next(line for line in result.stdout.splitlines() if line.startswith("PROBLEM"))
    assert "accessTokenType 'project'" in problem
    assert "if Infisical refuses type 'group' with a 422" in problem
    assert "upgrade Infisical" in problem


PROJECT_ACCOUNT_CONNECTION = "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d"


def test_a_project_service_account_rotates_and_its_old_token_is_revoked(fakes: Fakes, tmp_path: Path) -> None:
    """A project's service account: a new token for the same user, pushed, then the old one revoked."""
    gitlab, infisical = fakes.gitlab, fakes.infisical
    with gitlab.lock:
        project = gitlab.state.find_resource("project", fakes.seed.project_paths[0])
    assert project is not None
    account = gitlab.seed_service_account(project)
    old = gitlab.seed_personal_token(account, ["api"], days=30, name="proj-robot")
    infisical.seed_connection(
        old.value,
        instance_url=gitlab.url,
        access_token_type="personal",
        connection_id=PROJECT_ACCOUNT_CONNECTION,
    )
    h = Harness(fakes, tmp_path)
    config = yaml.safe_load((tmp_path / "rotator.yaml").read_text())
    config["targets"] = [
        {
            "name": "proj-robot",
            "service_account": {"user_id": account.id, "project": project.id},
            "connection_id": PROJECT_ACCOUNT_CONNECTION,
            "adopt_token_id": old.id,
            "token": {"scopes": ["api"], "lifetime": "30d"},
        }
    ]
    (tmp_path / "rotator.yaml").write_text(yaml.safe_dump(config))

    def active() -> list[int]:
        with gitlab.lock:
            now = fakes.clock.now()
            return [t.id for t in gitlab.state.tokens.values() if t.user_id == account.id and t.active(now)]

    def works() -> bool:
        return gitlab.test_only_accepts(infisical.test_only_held_token(PROJECT_ACCOUNT_CONNECTION))

    first = h.run("run-once")
    assert first.code == 0, first.stderr
    assert len(active()) == 2
    assert old.id in active()
    assert works()
    assert infisical.test_only_credentials(PROJECT_ACCOUNT_CONNECTION)["accessTokenType"] == "personal"
    fakes.clock.advance(timedelta(minutes=61))
    second = h.run("run-once")
    assert second.code == 0, second.stderr
    assert old.id not in active()
    assert len(active()) == 1
    assert works()
    history = h.run("history", "--target", "proj-robot", "--json").json()
    assert history[0]["retired"][0]["evidence"] == "DELETE 204"
