"""How the fake GitLab authenticates a request, as ``lib/gitlab/auth/auth_finders.rb`` does.

The credential comes from ``PRIVATE-TOKEN`` or ``Authorization: Bearer``. An unknown credential
gets ``401 {"message":"401 Unauthorized"}``; a known one is checked in GitLab's order: expired,
then revoked, then scope. A revoked credential presented on any ``…access_tokens/<id|self>/rotate``
path first revokes every active descendant of that token (automatic reuse detection).
"""

import re

from datetime import datetime

from rotator.testing._gitlab_errors import (
    INVALID_TOKEN_EXPIRED,
    INVALID_TOKEN_REVOKED,
    error,
    insufficient_scope,
    invalid_token,
)
from rotator.testing._gitlab_state import LAST_USED_CADENCE, GitLabState, Token, User
from rotator.testing._http import Request


#: Scopes a route accepts. ``None`` means the default: ``api``, plus ``read_api`` for reads.
ANY_SCOPE = frozenset({"*"})
USER_SCOPES = frozenset({"api", "read_api", "read_user"})
SELF_ROTATE_SCOPES = frozenset({"api", "self_rotate"})

_ROTATION_PATH = re.compile(r"access_tokens/(\d+|self)/rotate$")


def credential(request: Request) -> str | None:
    """The token value the request presents, if any."""
    private = request.headers.get("private-token")
    if private:
        return private
    bearer = request.headers.get("authorization", "")
    return bearer[7:] if bearer.lower().startswith("bearer ") else None


def authenticate(
    state: GitLabState, request: Request, now: datetime, scopes: frozenset[str] | None
) -> tuple[User, Token]:
    """The user and token behind ``request``, or an :class:`HTTPError` as GitLab answers."""
    value = credential(request)
    token = state.token_by_value(value) if value else None
    if token is None:
        error(401, "401 Unauthorized")
    if token.expired(now):
        invalid_token(INVALID_TOKEN_EXPIRED)
    if token.revoked:
        if _ROTATION_PATH.search(request.path):
            state.revoke_family(token)
        invalid_token(INVALID_TOKEN_REVOKED)
    if scopes is None:
        scopes = frozenset({"api", "read_api"}) if request.method == "GET" else frozenset({"api"})
    if scopes is not ANY_SCOPE and not scopes.intersection(token.scopes):
        insufficient_scope(scopes)
    # GitLab writes last_used_at on first use, then at most every 10 minutes.
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_CADENCE:
        token.last_used_at = now
    return state.users[token.user_id], token
