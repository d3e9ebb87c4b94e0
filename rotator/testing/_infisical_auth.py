"""Machine identities, Universal Auth and identity access tokens for the fake Infisical.

Access tokens are real HS256 JWTs signed with the fake's own key and backed by a database row, as
Infisical does: the JWT is verified first (bad signature or past ``exp`` → 403 ``TokenError``), then
the row (revoked or missing → 401 ``No identity access token found``; TTL since last renewal
exceeded → 401). Renewal verifies the JWT first, so an expired token cannot be renewed; it fails
past ``accessTokenMaxTTL``. A login with an unknown client id is 404 ``NotFound``; three failed
logins within 30 s lock the identity's Universal Auth for 300 s.
"""

import base64
import hashlib
import hmac
import json
import secrets
import uuid

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rotator.testing._infisical_errors import fail


LOCKOUT_FAILURES = 3
LOCKOUT_WINDOW = timedelta(seconds=30)
LOCKOUT_DURATION = timedelta(seconds=300)


@dataclass(slots=True)
class Identity:
    """A machine identity with Universal Auth and a role on app connections."""

    id: str
    client_id: str
    client_secret: str = field(repr=False)
    access_token_ttl: int = 7200
    access_token_max_ttl: int = 2592000
    can_read: bool = True
    can_edit: bool = True
    failures: list[datetime] = field(default_factory=list)
    locked_until: datetime | None = None


@dataclass(slots=True)
class AccessTokenRow:
    """The database row behind an identity access token."""

    id: str
    identity_id: str
    ttl: int
    max_ttl: int
    created_at: datetime
    renewed_at: datetime
    revoked: bool = False


@dataclass(slots=True)
class IdentityAuth:
    """Identities and their access tokens; mutate only under the server's lock."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    identities: dict[str, Identity] = field(default_factory=dict)
    rows: dict[str, AccessTokenRow] = field(default_factory=dict)

    def add_identity(self, *, ttl: int = 7200, max_ttl: int = 2592000) -> Identity:
        """A new identity with fresh Universal Auth credentials."""
        identity = Identity(
            id=str(uuid.uuid4()),
            client_id=str(uuid.uuid4()),
            client_secret=secrets.token_hex(32),
            access_token_ttl=ttl,
            access_token_max_ttl=max_ttl,
        )
        self.identities[identity.id] = identity
        return identity

    def issue(self, identity: Identity, now: datetime, **claims: Any) -> dict[str, Any]:  # noqa: ANN401 - JSON claims
        """A new access token for ``identity``: the login response body; ``claims`` are added to the JWT."""
        row = AccessTokenRow(
            str(uuid.uuid4()),
            identity.id,
            identity.access_token_ttl,
            identity.access_token_max_ttl,
            now,
            now,
        )
        self.rows[row.id] = row
        return self._response(row, now, claims)

    def login(self, client_id: str, client_secret: str, now: datetime) -> dict[str, Any]:
        """Universal Auth login, with Infisical's lockout after repeated failures."""
        identity = next((i for i in self.identities.values() if i.client_id == client_id), None)
        if identity is None:
            # No identity to lock: the real server says so with a 404, not the 401 of a bad secret.
            fail(404, "NotFound", "No identity with specified client ID was found")
        if identity.locked_until is not None and now < identity.locked_until:
            fail(
                401,
                "UnauthorizedError",
                "This identity auth method is temporarily locked, please try again later",
            )
        if not hmac.compare_digest(identity.client_secret, client_secret):
            identity.failures = [t for t in identity.failures if t > now - LOCKOUT_WINDOW] + [now]
            if len(identity.failures) >= LOCKOUT_FAILURES:
                identity.locked_until = now + LOCKOUT_DURATION
                identity.failures = []
            fail(401, "UnauthorizedError", "Invalid credentials")
        identity.failures = []
        return self.issue(identity, now)

    def renew(self, token: str, now: datetime) -> dict[str, Any]:
        """Renew: verify the JWT, check the row and the max TTL, answer a new JWT."""
        row = self._row(token, now)
        if row.max_ttl:
            max_end = row.created_at + timedelta(seconds=row.max_ttl)
            if now >= max_end:
                fail(401, "UnauthorizedError", "Failed to renew MI access token due to Max TTL expiration")
            if now + timedelta(seconds=row.ttl) > max_end:
                del self.rows[row.id]  # Infisical deletes the token when renewal would pass its max TTL
                fail(401, "UnauthorizedError", "Failed to renew MI access token past its Max TTL expiration")
        row.renewed_at = now
        return self._response(row, now)

    def revoke(self, token: str, now: datetime) -> None:
        """Revoke the access token ``token``."""
        self._row(token, now).revoked = True

    def authenticate(self, authorization: str | None, now: datetime) -> Identity:
        """The identity behind an ``Authorization: Bearer`` header, or Infisical's error."""
        # verify-auth.ts: only an absent header is "Token missing"; anything else is sliced after
        # "Bearer " and verified as a JWT, so a malformed header is 403 TokenError.
        if not authorization:
            fail(401, "UnauthorizedError", "Token missing")
        row = self._row(authorization[7:], now)
        return self.identities[row.identity_id]

    def _row(self, token: str, now: datetime) -> AccessTokenRow:
        claims = self._verify(token, now)
        row = self.rows.get(str(claims.get("identityAccessTokenId")))
        if row is None or row.revoked:
            fail(401, "UnauthorizedError", "No identity access token found")
        if row.ttl and now > row.renewed_at + timedelta(seconds=row.ttl):
            fail(
                401,
                "UnauthorizedError",
                "Failed to authorize MI access token due to TTL expiration",
            )
        return row

    def issued(self, value: str) -> bool:
        """Whether ``value`` is an access token signed here (even expired) or a client secret."""
        if any(hmac.compare_digest(i.client_secret, value) for i in self.identities.values()):
            return True
        header, _, rest = value.partition(".")
        payload, _, signature = rest.partition(".")
        expected = hmac.new(self.key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return hmac.compare_digest(signature, base64.urlsafe_b64encode(expected).rstrip(b"=").decode())

    # ---- JWT ----------------------------------------------------------------------------------

    def _response(
        self, row: AccessTokenRow, now: datetime, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "identityId": row.identity_id,
            "identityAccessTokenId": row.id,
            "authTokenType": "identityAccessToken",
            "iat": int(now.timestamp()),
            **(extra or {}),
        }
        if row.ttl:
            claims["exp"] = int(now.timestamp()) + row.ttl
        return {
            "accessToken": self._sign(claims),
            "expiresIn": row.ttl,
            "accessTokenMaxTTL": row.max_ttl,
            "tokenType": "Bearer",
        }

    def _sign(self, claims: dict[str, Any]) -> str:
        header = _b64({"alg": "HS256", "typ": "JWT"})
        payload = _b64(claims)
        signature = hmac.new(self.key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()

    def _verify(self, token: str, now: datetime) -> dict[str, Any]:
        malformed = "The provided access token is malformed. Please re-authenticate."
        parts = token.split(".")
        if len(parts) != 3:
            fail(403, "TokenError", malformed)
        expected = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            signature = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            fail(403, "TokenError", malformed)
        if not hmac.compare_digest(signature, expected) or not isinstance(claims, dict):
            fail(403, "TokenError", malformed)
        if "exp" in claims and now.timestamp() >= claims["exp"]:
            fail(403, "TokenError", "Your token has expired. Please re-authenticate.")
        return claims


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
