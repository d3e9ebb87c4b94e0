"""Both fakes started together and seeded with what ``config/example.yaml`` names.

The seed: a group ``acme`` with projects ``acme/app`` and ``acme/api``; a human ``rotator-manager``
who is Maintainer on both, holding a personal access token with ``api`` scope (the manager token);
a project access token in each project, each held by one Infisical GitLab connection (the tokens a
first rotation adopts); a machine identity with Universal Auth and an access token.
"""

import contextlib
import secrets

from collections.abc import Iterator
from dataclasses import asdict, dataclass

from rotator.testing._clock import FakeClock
from rotator.testing._gitlab_state import MAINTAINER
from rotator.testing.gitlab import FakeGitLab
from rotator.testing.infisical import FakeInfisical


#: The fixed ids ``config/example.yaml`` refers to.
EXAMPLE_CONNECTION_IDS = (
    "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71",
)


@dataclass(frozen=True, slots=True)
class Seed:
    """What the seeded fakes hold; secrets included, for the person running the fakes."""

    gitlab_url: str
    infisical_url: str
    project_ids: tuple[int, ...]
    project_paths: tuple[str, ...]
    connection_ids: tuple[str, ...]
    adopt_token_ids: tuple[int, ...]
    manager_token: str
    infisical_client_id: str
    infisical_client_secret: str
    infisical_token: str
    #: The fakes' test-hooks key: rotator arms ROTATOR_TEST_* only when it is given and proved.
    test_hooks_key: str = ""

    def environment(self) -> dict[str, str]:
        """The variables rotator reads, set for these fakes (the test-hooks opt-in included)."""
        return {
            "ROTATOR_GITLAB_TOKEN": self.manager_token,
            "ROTATOR_INFISICAL_CLIENT_ID": self.infisical_client_id,
            "ROTATOR_INFISICAL_CLIENT_SECRET": self.infisical_client_secret,
            **({"ROTATOR_TEST_HOOKS": self.test_hooks_key} if self.test_hooks_key else {}),
        }

    def as_json(self) -> dict[str, object]:
        """A JSON-able view."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Fakes:
    """Two running fakes, their shared clock and their seed."""

    gitlab: FakeGitLab
    infisical: FakeInfisical
    clock: FakeClock
    seed: Seed


def seed(gitlab: FakeGitLab, infisical: FakeInfisical) -> Seed:
    """Seed both (already listening) fakes; see the module docstring."""
    manager = gitlab.seed_user("rotator-manager")
    group = gitlab.seed_resource("group", "acme")
    projects = [gitlab.seed_resource("project", f"acme/{name}", parent=group) for name in ("app", "api")]
    token_ids: list[int] = []
    for project, connection_id in zip(projects, EXAMPLE_CONNECTION_IDS, strict=True):
        gitlab.seed_member(project, manager, MAINTAINER)
        name = project.path.rsplit("/", 1)[-1]
        held = gitlab.seed_resource_token(project, f"{name}-deploy", ["api"], days=30)
        token_ids.append(held.id)
        infisical.seed_connection(
            held.value, instance_url=gitlab.url, name=f"gitlab-{name}", connection_id=connection_id
        )
    manager_token = gitlab.seed_personal_token(manager, ["api"], name="rotator-manager")
    identity = infisical.seed_identity()
    return Seed(
        gitlab_url=gitlab.url,
        infisical_url=infisical.url,
        project_ids=tuple(p.id for p in projects),
        project_paths=tuple(p.path for p in projects),
        connection_ids=EXAMPLE_CONNECTION_IDS,
        adopt_token_ids=tuple(token_ids),
        manager_token=manager_token.value,
        infisical_client_id=identity.client_id,
        infisical_client_secret=identity.client_secret,
        infisical_token=infisical.seed_access_token(identity),
        test_hooks_key=gitlab.test_hooks_key,
    )


@contextlib.contextmanager
def start_fakes(
    *,
    host: str = "127.0.0.1",
    gitlab_port: int = 0,
    infisical_port: int = 0,
    clock: FakeClock | None = None,
    legacy_tokens: bool = False,
) -> Iterator[Fakes]:
    """Start both fakes (ephemeral ports by default), seed them, stop them on exit.

    GitLab mints routable tokens unless ``legacy_tokens``. Both fakes share one fresh test-hooks
    key (``seed.environment()`` hands it out as ``ROTATOR_TEST_HOOKS``), so either can prove it.
    """
    clock = clock or FakeClock()
    key = secrets.token_urlsafe(24)
    gitlab = FakeGitLab(clock, legacy_tokens=legacy_tokens, test_hooks_key=key)
    infisical = FakeInfisical(clock, test_hooks_key=key)
    # Each records any request carrying the other's credential: no client may mix them up.
    gitlab.strangers, infisical.strangers = (infisical,), (gitlab,)
    gitlab.start(host, gitlab_port)
    try:
        infisical.start(host, infisical_port)
        try:
            yield Fakes(gitlab, infisical, clock, seed(gitlab, infisical))
        finally:
            infisical.stop()
    finally:
        gitlab.stop()
