"""A group target and a service-account target beside the seed's projects, for the tests of every kind.

:func:`seed_kinds` adds to the seeded fakes a group ``platform`` the manager owns, one group access
token and one service account provisioned by the group with one personal access token, each held
by its own Infisical connection of the matching ``accessTokenType``. :func:`targets` writes the
three kinds' targets (the seed's first project too), each adopting the token its connection holds.

With ``instance=True`` it also seeds an instance service account (``service_account: {user_id}``)
with one token and its own connection, and makes the manager an administrator (only an admin
manages such tokens): the :data:`INSTANCE` kind, which the fault campaign runs beside
:data:`KINDS` in its exhaustive tier.
"""

from dataclasses import dataclass
from typing import Any

from rotator.testing import Fakes
from rotator.testing._gitlab_state import OWNER, User
from tests.cli_harness import CONNECTIONS


GROUP_CONNECTION = "5b0e3f52-7a5e-4d5e-9d0f-1a2b3c4d5e6f"
INSTANCE_CONNECTION = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
ACCOUNT_CONNECTION = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
#: The target kinds, as the config spells them.
KINDS = ("project", "group", "service_account")
#: An instance service account's target (an admin manager; tokens through the PAT API).
INSTANCE = "instance_service_account"
#: Each kind's target name and connection (the project one is the seed's first).
NAMES = {"project": "app-deploy", "group": "platform-sync", "service_account": "robot", INSTANCE: "ops-robot"}
CONNECTION_OF = {
    "project": CONNECTIONS[0],
    "group": GROUP_CONNECTION,
    "service_account": ACCOUNT_CONNECTION,
    INSTANCE: INSTANCE_CONNECTION,
}
#: The create route of each kind's tokens, as the fake GitLab names it.
CREATE_ROUTES = {
    "project": "POST /api/v4/projects/:id/access_tokens",
    "group": "POST /api/v4/groups/:id/access_tokens",
    "service_account": "POST /api/v4/groups/:id/service_accounts/:user_id/personal_access_tokens",
    INSTANCE: "POST /api/v4/users/:user_id/personal_access_tokens",
}


@dataclass(frozen=True)
class Seeded:
    """What :func:`seed_kinds` added: the group, the service account, the token each connection held."""

    fakes: Fakes
    group_id: int
    account: User
    held: dict[str, int]  # kind -> the token id its connection held at the start
    instance: User | None = None  # the instance service account, when seeded

    def target(self, kind: str) -> dict[str, Any]:
        """The config target of ``kind``, adopting the token its connection holds."""
        owner: dict[str, Any]
        if kind == "project":
            owner = {"project": self.fakes.seed.project_paths[0]}
        elif kind == "group":
            owner = {"group": "platform"}
        elif kind == INSTANCE:
            owner = {
                "service_account": {"user_id": self._instance().id},
                "token": {"scopes": ["api", "read_user"], "lifetime": "30d"},
            }
        else:
            owner = {
                "service_account": {"user_id": self.account.id, "group": self.group_id},
                "token": {"scopes": ["api", "read_user"], "lifetime": "30d"},
            }
        return {
            "name": NAMES[kind],
            **owner,
            "connection_id": CONNECTION_OF[kind],
            "adopt_token_id": self.held[kind],
        }

    def targets(self) -> list[dict[str, Any]]:
        """The three kinds' targets, project first."""
        return [self.target(kind) for kind in KINDS]

    def active(self, kind: str) -> list[int]:
        """Active token ids of the kind's owner (test-only view, past any fault)."""
        gitlab = self.fakes.gitlab
        if kind == "project":
            return gitlab.test_only_active_token_ids(self.fakes.seed.project_ids[0])
        now = self.fakes.clock.now()
        with gitlab.lock:
            tokens = gitlab.state.tokens.values()
            if kind == "group":
                group = gitlab.state.resources[("group", self.group_id)]
                mine = [t for t in tokens if t.resource is group]
            elif kind == INSTANCE:
                mine = [t for t in tokens if t.user_id == self._instance().id]
            else:
                mine = [t for t in tokens if t.user_id == self.account.id]
            return [t.id for t in mine if t.active(now)]

    def works(self, kind: str) -> bool:
        """Whether GitLab accepts what the kind's connection holds now."""
        fakes = self.fakes
        return fakes.gitlab.test_only_accepts(fakes.infisical.test_only_held_token(CONNECTION_OF[kind]))

    def hand_made(self, kind: str) -> tuple[int, str]:
        """A token of the kind's owner a person made by hand (id, value): a year's life, never rotator's."""
        gitlab = self.fakes.gitlab
        if kind == "group":
            group = gitlab.state.resources[("group", self.group_id)]
            token = gitlab.seed_resource_token(group, "hand-made", ["api"], days=365, access_level=OWNER)
        else:
            account = self._instance() if kind == INSTANCE else self.account
            token = gitlab.seed_personal_token(account, ["api", "read_user"], days=365, name="hand-made")
        return token.id, token.value

    def _instance(self) -> User:
        assert self.instance is not None, "seed_kinds(instance=True) seeds the instance service account"
        return self.instance


def seed_kinds(fakes: Fakes, *, instance: bool = False) -> Seeded:
    """The group ``platform`` (the manager its Owner), its group token, its service account and token.

    ``instance``: an instance service account and its token too, the manager an administrator.
    """
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
    held = {
        "project": fakes.seed.adopt_token_ids[0],
        "group": group_token.id,
        "service_account": account_token.id,
    }
    if not instance:
        return Seeded(fakes, group.id, account, held)
    manager.admin = True
    robot = gitlab.seed_service_account(None, "Ops robot")
    robot_token = gitlab.seed_personal_token(robot, ["api", "read_user"], days=30, name="ops-robot")
    infisical.seed_connection(
        robot_token.value,
        instance_url=gitlab.url,
        access_token_type="personal",
        connection_id=INSTANCE_CONNECTION,
    )
    return Seeded(fakes, group.id, account, {**held, INSTANCE: robot_token.id}, robot)
