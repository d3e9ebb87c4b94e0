"""How a target's owner is named (``check``'s lines, the look's), and the manager's role in words."""

from datetime import timedelta

import pytest

from rotator.core.model import Kind, Owner
from rotator.core.spec import RotationSpec, TokenShape
from rotator.engine.owners import owner_of, role_held, shown


def _target(kind: Kind, ref: int | str, via: tuple[Kind, int | str] | None = None) -> RotationSpec:
    return RotationSpec(
        name="t",
        project=ref,
        connection_id="c",
        token=TokenShape(("api",), 40, timedelta(days=30)),
        token_base_name="t",
        renew_before=timedelta(days=10),
        grace=timedelta(hours=1),
        kind=kind,
        via=via,
    )


#: Every path resolves to 7 in these examples.
def _seven(_kind: Kind, _path: str) -> int:
    return 7


@pytest.mark.parametrize(
    ("target", "configured", "resolved"),
    [
        (_target(Kind.PROJECT, "acme/app"), "project acme/app", "project acme/app (7)"),
        (_target(Kind.PROJECT, 7), "project 7", "project 7"),
        (_target(Kind.GROUP, "platform"), "group platform", "group platform (7)"),
        (_target(Kind.GROUP, 7), "group 7", "group 7"),
        (
            _target(Kind.SERVICE_ACCOUNT, 9, (Kind.GROUP, "platform")),
            "service account 9 of group platform",
            "service account 9 of group platform (7)",
        ),
        (
            _target(Kind.SERVICE_ACCOUNT, 9, (Kind.PROJECT, 7)),
            "service account 9 of project 7",
            "service account 9 of project 7",
        ),
        (
            _target(Kind.SERVICE_ACCOUNT, 9),
            "service account 9 of the instance",
            "service account 9 of the instance",
        ),
    ],
)
def test_an_owner_is_named_as_configured_with_each_paths_id_once_resolved(
    target: RotationSpec, configured: str, resolved: str
) -> None:
    """As configured for ``check``; resolved, a path is followed by its id, an id is shown once."""
    assert shown(target) == configured
    assert shown(target, owner_of(target, _seven)) == resolved


@pytest.mark.parametrize(
    ("owner", "level", "words"),
    [
        (Owner(Kind.PROJECT, 1), 40, "maintainer"),
        (Owner(Kind.PROJECT, 1), 50, "owner"),
        (Owner(Kind.GROUP, 7), 50, "owner"),
        (Owner(Kind.SERVICE_ACCOUNT, 9, Kind.GROUP, 7), 50, "owner"),
        (Owner(Kind.SERVICE_ACCOUNT, 9), 50, "admin"),
    ],
)
def test_the_managers_role_is_worded_where_the_owners_tokens_live(
    owner: Owner, level: int, words: str
) -> None:
    """A project's or group's role by name; an instance service account's 50 is an admin."""
    assert role_held(owner, level) == words
