"""Config: exactly one of ``project``, ``group``, ``service_account`` per target; errors name the key."""

from typing import Any

import pytest

from rotator.core.errors import ConfigError
from rotator.core.model import Kind
from rotator.doors.config import engine_spec, parse_config


CONN = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


def _config(**owner: object) -> dict[str, Any]:
    target = {"name": "t", "connection_id": CONN, "token": {"scopes": ["api"]}, **owner}
    return {"gitlab": {"url": "https://gitlab.example.com"}, "targets": [target]}


def _error(**owner: object) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        parse_config(_config(**owner))
    return raised.value


@pytest.mark.parametrize(
    ("owner", "kind", "ref", "via"),
    [
        ({"project": "acme/app"}, Kind.PROJECT, "acme/app", None),
        ({"group": 7}, Kind.GROUP, 7, None),
        ({"group": "acme"}, Kind.GROUP, "acme", None),
        ({"group": "acme/sub"}, Kind.GROUP, "acme/sub", None),
        ({"service_account": {"user_id": 9, "group": "acme"}}, Kind.SERVICE_ACCOUNT, 9, (Kind.GROUP, "acme")),
        ({"service_account": {"user_id": 9, "project": 42}}, Kind.SERVICE_ACCOUNT, 9, (Kind.PROJECT, 42)),
        ({"service_account": {"user_id": "9"}}, Kind.SERVICE_ACCOUNT, 9, None),
    ],
)
def test_each_kind_reaches_the_engine(owner: dict[str, object], kind: Kind, ref: object, via: object) -> None:
    """Each owner key becomes the spec's kind, owner reference and service account home."""
    target = engine_spec(parse_config(_config(**owner))).targets[0]
    assert (target.kind, target.project, target.via) == (kind, ref, via)


@pytest.mark.parametrize(
    ("owner", "key", "fragment"),
    [
        ({}, "targets[0]", "needs exactly one of project, group, service_account; has none"),
        ({"project": 1, "group": 2}, "targets[0]", "has project and group"),
        ({"group": 2, "service_account": {"user_id": 3}}, "targets[0]", "has group and service_account"),
        ({"group": "bad path!"}, "targets[0].group", '"group/sub" path'),
        ({"group": 0}, "targets[0].group", "at least 1"),
        ({"service_account": {"group": 1}}, "targets[0].service_account.user_id", ""),
        (
            {"service_account": {"user_id": 1, "group": 1, "project": 2}},
            "targets[0].service_account",
            "not both",
        ),
        ({"service_account": {"user_id": 1, "team": 2}}, "targets[0].service_account.team", "unknown key"),
    ],
)
def test_owner_mistakes_name_the_key(owner: dict[str, object], key: str, fragment: str) -> None:
    """A missing, doubled or malformed owner key is a ConfigError naming where it is."""
    error = _error(**owner)
    assert error.key.startswith(key), (error.key, error.problem)
    assert fragment in error.problem


def test_read_user_is_for_service_accounts_only() -> None:
    """read_user passes for a service account's tokens and is refused for a group's."""
    account = _config(service_account={"user_id": 9})
    account["targets"][0]["token"]["scopes"] = ["api", "read_user"]
    assert parse_config(account).targets[0].token.scopes == ("api", "read_user")
    group = _config(group=7)
    group["targets"][0]["token"]["scopes"] = ["api", "read_user"]
    with pytest.raises(ConfigError) as raised:
        parse_config(group)
    assert "read_user is for a service account's tokens" in raised.value.problem
