"""Read-only checks: the connection's shape (rule 5), one owner per token (§6), what the manager may do.

``check`` and the upstream look of ``plan`` and ``status --live`` (:mod:`rotator.engine.look`)
judge the manager token and its role with the same functions, so the two never disagree.
"""

from rotator.core import rules
from rotator.core.errors import OLDER_INFISICAL
from rotator.core.model import Connection, Kind, Owner, TargetKey, TokenInfo
from rotator.core.ports import Journal
from rotator.core.redact import redact
from rotator.engine.owners import level_needed, role_needed


GITLAB_COM = "https://gitlab.com"
#: The role the manager needs to create, list and revoke access tokens (GitLab's Maintainer).
MAINTAINER = 40


def owned_elsewhere(journal: Journal, key: TargetKey, token_id: int) -> str | None:
    """Which other target the journal tracks ``token_id`` for as a live token, in words; else ``None``.

    Architecture §6: one token, one owner. Checked against the whole journal, not one target's
    rows, so no target adopts or revokes a token another target holds, pends or may have pushed.
    """
    return rules.owned_elsewhere(journal.owners(key.gitlab_url, token_id), key, token_id)


#: The ``accessTokenType`` a connection holding each kind's tokens has (architecture §9).
TOKEN_TYPES = {Kind.PROJECT: "project", Kind.GROUP: "group", Kind.SERVICE_ACCOUNT: "personal"}


def check_connection(conn: Connection, gitlab_url: str, kind: Kind | None = None) -> str | None:
    """Rule 5: why this connection must not be written to, or ``None`` if it is fine.

    With ``kind``, the connection's ``accessTokenType`` must be that kind's: rotator resends the
    type it read and never changes it, so a mismatch is the configuration's error.
    """
    if conn.app != "gitlab":
        return f"connection {conn.id} is for app {conn.app!r}, not gitlab"
    if conn.method != "access-token":
        return f"connection {conn.id} uses method {conn.method!r}; rotator needs access-token"
    if not conn.access_token_type:
        return f"connection {conn.id} has no accessTokenType"
    if kind is not None and conn.access_token_type != TOKEN_TYPES[kind]:
        # An Infisical server older than group tokens cannot hold a "group" connection at all:
        # a group token in a "project" connection is the workaround there, which rotator refuses.
        older = (
            f" (if Infisical refuses type 'group' with a 422, {OLDER_INFISICAL})"
            if kind is Kind.GROUP
            else ""
        )
        return (
            f"connection {conn.id} has accessTokenType {conn.access_token_type!r}, but the target"
            f" rotates {kind.value} tokens (type {TOKEN_TYPES[kind]!r}); rotator never changes the"
            f" type: use a connection of that type, or the target kind that matches it{older}"
        )
    held = (conn.instance_url or GITLAB_COM).rstrip("/")
    if held != gitlab_url.rstrip("/"):
        # instanceUrl is whatever a person typed, user:password@ included: never quote that part.
        shown = redact(held)
        return f"connection {conn.id} points at {shown}, not the configured gitlab.url {gitlab_url}"
    return None


def manager_problem(me: TokenInfo) -> str | None:
    """Why the manager token (``GET /personal_access_tokens/self``) cannot do our work; else ``None``."""
    if not me.active:
        return "the manager token is not active"
    if "api" not in me.scopes:
        return f"the manager token lacks the api scope (has {', '.join(me.scopes)})"
    return None


def access_problem(level: int | None, owner: Owner | None = None) -> str | None:
    """Why the manager's role where ``owner``'s tokens live (a project if none) falls short; else None."""
    needed = level_needed(owner) if owner else MAINTAINER
    role = role_needed(owner).lower() if owner else "maintainer"
    if level is None:
        return f"the manager is not a member (needs {role}, {needed})"
    return None if level >= needed else f"the manager's role {level} is below {role} ({needed})"
