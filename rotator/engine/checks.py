"""Checks made before a write: the connection's shape (rule 5), and one owner per token (§6)."""

from rotator.core.model import OWNED_ROLES, Connection, TargetKey
from rotator.core.ports import Journal
from rotator.core.redact import redact


GITLAB_COM = "https://gitlab.com"


def owned_elsewhere(journal: Journal, key: TargetKey, token_id: int) -> str | None:
    """Which other target the journal tracks ``token_id`` for as a live token, in words; else ``None``.

    Architecture §6: one token, one owner. Checked against the whole journal, not one target's
    rows, so no target adopts or revokes a token another target holds, pends or may have pushed.
    """
    owners = [o for o in journal.owners(key.gitlab_url, token_id) if o.key != key and o.role in OWNED_ROLES]
    if not owners:
        return None
    return f"token {token_id} is " + " and ".join(
        f"the {o.role.value.replace('_', ' ')} token of target {o.target}" for o in owners
    )


def check_connection(conn: Connection, gitlab_url: str) -> str | None:
    """Rule 5: why this connection must not be written to, or ``None`` if it is fine."""
    if conn.app != "gitlab":
        return f"connection {conn.id} is for app {conn.app!r}, not gitlab"
    if conn.method != "access-token":
        return f"connection {conn.id} uses method {conn.method!r}; rotator needs access-token"
    if not conn.access_token_type:
        return f"connection {conn.id} has no accessTokenType"
    held = (conn.instance_url or GITLAB_COM).rstrip("/")
    if held != gitlab_url.rstrip("/"):
        # instanceUrl is whatever a person typed, user:password@ included: never quote that part.
        shown = redact(held)
        return f"connection {conn.id} points at {shown}, not the configured gitlab.url {gitlab_url}"
    return None
