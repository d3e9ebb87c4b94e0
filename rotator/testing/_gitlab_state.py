"""The fake GitLab's data: users, projects, groups, tokens, and who may do what.

Modelled on GitLab's own code as summarised in ``reference/gitlab.md``: every project or group
access token is a personal access token of its own bot user, which is a member of the resource at
the token's ``access_level``; a token is dead from 00:00 UTC on its ``expires_at`` date; revoked and
expired tokens stay listed as ``active: false``; rotation links the new token to the old one through
``previous_id``, which is what reuse detection walks.

Lookups go through indexes, so a request costs the same with five tokens or five thousand: by the
SHA-256 of the token value (GitLab itself finds a token by its ``token_digest``), by path, by
resource, and by ``previous_id``. The indexed fields (``value``, ``resource``, ``previous_id``,
``kind``, ``path``) are fixed when a record is made; :meth:`GitLabState.add_token` and
:meth:`GitLabState.add_resource` index what they make, and a token deleted or added by hand
(``del state.tokens[id]`` in a test) is noticed by the count and the indexes rebuilt.
"""

import base64
import hashlib
import secrets
import zlib

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal


ResourceKind = Literal["project", "group"]
#: How the server treats a token's ``description``: GitLab 17.7+ stores and shows it; older servers
#: ignore the undeclared parameter and show no such key; ``refused`` answers a Grape-style 400.
Descriptions = Literal["stored", "ignored", "refused"]

GUEST, PLANNER, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 15, 20, 30, 40, 50
ACCESS_LEVELS = (GUEST, PLANNER, REPORTER, DEVELOPER, MAINTAINER, OWNER)

#: The REST API's prefix, which every route of the fake GitLab shares.
API = "/api/v4"
#: A route's plural (``/projects/:id/...``) and the kind of resource it names.
RESOURCE_KINDS: dict[str, ResourceKind] = {"projects": "project", "groups": "group"}
#: The role that reads, creates, rotates and revokes a resource's tokens, and manages its service
#: accounts and theirs.
MANAGER_ROLE: dict[ResourceKind, int] = {"project": MAINTAINER, "group": OWNER}

#: Scopes a project or group access token may have: GitLab's ``resource_bot_scopes``
#: (every non-admin scope except ``read_user``; registry ones assume the registry is enabled).
RESOURCE_BOT_SCOPES = frozenset(
    {
        "api", "read_api", "create_runner", "manage_runner", "k8s_proxy", "self_rotate",
        "read_repository", "write_repository", "read_registry", "write_registry",
        "read_virtual_registry", "write_virtual_registry", "read_observability",
        "write_observability", "ai_features",
    },
)  # fmt: skip
#: Scopes a service account's personal access token may have: ordinary PAT scopes, so ``read_user``
#: too (``reference/gitlab-2.md`` §1.3; admin-only scopes left out).
PERSONAL_SCOPES = RESOURCE_BOT_SCOPES | {"read_user"}

MAX_LIFETIME_DAYS = 365
ROTATE_DEFAULT_DAYS = 7
LAST_USED_CADENCE = timedelta(minutes=10)


def _base36(number: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = digits[digit] + out
        if not number:
            return out.rjust(width, "0")


def routable_token(prefix: str, user_id: int, organization_id: int = 1) -> str:
    """A token in GitLab's routable format (``Authn::TokenField::Generator::RoutableToken``).

    ``<prefix><base64url(16 random bytes + routing payload + its length)>.<version>.<length>``
    followed by the CRC32 of all that, in base 36: for example ``glpat-``, 32 base64url
    characters, ``.01.``, ``0w`` (32 in base 36) and 7 characters of CRC, 51 in all (a longer
    routing payload makes a longer token). No whole example is written out: a token-shaped string
    in the package would trip secret scanners, the image's layer check among them.
    """
    payload = f"o:{_base36(organization_id, 1)}\nu:{_base36(user_id, 1)}".encode()
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(16) + payload + bytes([len(payload)]))
    body = encoded.decode().rstrip("=")
    value = f"{prefix}{body}.{_base36(1, 2)}.{_base36(len(body), 2)}"
    return value + _base36(zlib.crc32(value.encode()), 7)


def iso_ms(when: datetime) -> str:
    """GitLab's timestamp format: ``2021-01-20T22:11:48.151Z``."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass(slots=True)
class User:
    """A human or a bot user."""

    id: int
    username: str
    name: str
    bot: bool = False
    admin: bool = False
    #: A service account: the group or project that provisioned it, or ``None`` for an instance one.
    service_account: bool = False
    provisioned_by: "Resource | None" = None

    def as_json(self, base_url: str) -> dict[str, Any]:
        """What ``GET /user`` shows; ``base_url`` is the instance's external URL."""
        return {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "state": "active",
            # ``User#bot?`` covers every user type in ``BOT_USER_TYPES``, service accounts included.
            "bot": self.bot or self.service_account,
            "is_admin": self.admin,
            "web_url": f"{base_url}/{self.username}",
        }


@dataclass(slots=True)
class Resource:
    """A project or a group, with direct members (user id → access level)."""

    id: int
    kind: ResourceKind
    path: str
    parent_id: int | None = None  # a project's or subgroup's group
    members: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class Token:
    """A personal access token record; resource tokens carry ``resource``."""

    id: int
    name: str
    user_id: int
    scopes: list[str]
    expires_at: date | None
    created_at: datetime
    value: str = field(repr=False)
    revoked: bool = False
    last_used_at: datetime | None = None
    description: str | None = None
    access_level: int | None = None
    resource: Resource | None = None
    previous_id: int | None = None
    #: Whether the API shows ``description`` (``False`` on a server older than 17.7).
    described: bool = True

    def expired(self, now: datetime) -> bool:
        """Dead from 00:00 UTC on ``expires_at`` (GitLab: ``expires_at <= Time.current``)."""
        return self.expires_at is not None and self.expires_at <= now.date()

    def active(self, now: datetime) -> bool:
        """Neither revoked nor expired."""
        return not self.revoked and not self.expired(now)

    def as_json(self, now: datetime) -> dict[str, Any]:
        """The API entity, never with the token value."""
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "revoked": self.revoked,
            "created_at": iso_ms(self.created_at),
            **({"description": self.description} if self.described else {}),
            "scopes": list(self.scopes),
            "user_id": self.user_id,
            "last_used_at": iso_ms(self.last_used_at) if self.last_used_at else None,
            "active": self.active(now),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }
        if self.resource is not None:
            data["access_level"] = self.access_level
            data["resource_type"] = self.resource.kind
            data["resource_id"] = self.resource.id
        return data


@dataclass(slots=True)
class GitLabState:
    """Everything the fake GitLab knows; mutate only under the server's lock."""

    host: str = "gitlab.example.com"
    users: dict[int, User] = field(default_factory=dict)
    resources: dict[tuple[ResourceKind, int], Resource] = field(default_factory=dict)
    tokens: dict[int, Token] = field(default_factory=dict)
    require_expiry: bool = True
    #: Mint tokens in the routable format (GitLab 18); ``False``: legacy ``glpat-`` + 20 characters.
    routable_tokens: bool = True
    #: An admin's "Maximum allowable lifetime for access tokens" (EE), in days; 365 when unset.
    max_lifetime_days: int = MAX_LIFETIME_DAYS
    #: See :data:`Descriptions`; tokens minted from then on follow it.
    descriptions: Descriptions = "stored"
    #: Ids of revoked tokens presented on a rotate path (each one revoked its whole family).
    reuse_detections: list[int] = field(default_factory=list)
    _next_id: dict[str, int] = field(default_factory=dict)
    # The indexes (see the module docstring) and how many records they cover.
    _by_digest: dict[bytes, Token] = field(default_factory=dict, repr=False)
    _by_resource: dict[tuple[ResourceKind, int], list[Token]] = field(default_factory=dict, repr=False)
    _by_previous: dict[int, list[Token]] = field(default_factory=dict, repr=False)
    _by_path: dict[tuple[ResourceKind, str], Resource] = field(default_factory=dict, repr=False)
    _indexed: tuple[int, int] = (0, 0)  # (tokens, resources)

    def next_id(self, kind: str) -> int:
        """A fresh id per kind, as a database sequence would give."""
        self._next_id[kind] = self._next_id.get(kind, 0) + 1
        return self._next_id[kind]

    # ---- seeding ------------------------------------------------------------------------------

    def add_user(self, username: str, *, admin: bool = False, bot: bool = False) -> User:
        """Create a user."""
        user = User(self.next_id("user"), username, username, bot=bot, admin=admin)
        self.users[user.id] = user
        return user

    def add_resource(self, kind: ResourceKind, path: str, *, parent: Resource | None = None) -> Resource:
        """Create a project or group, optionally inside a group."""
        resource = Resource(self.next_id(kind), kind, path, parent.id if parent else None)
        self._sync()
        self.resources[(kind, resource.id)] = resource
        self._index_resource(resource)
        return resource

    def add_token(  # noqa: PLR0913 - mirrors the API's parameters
        self,
        user: User,
        name: str,
        scopes: list[str],
        expires_at: date | None,
        now: datetime,
        *,
        resource: Resource | None = None,
        access_level: int | None = None,
        description: str | None = None,
        previous_id: int | None = None,
    ) -> Token:
        """Mint a token for ``user`` with a fresh ``glpat-`` value (routable unless switched off)."""
        value = (
            routable_token("glpat-", user.id)
            if self.routable_tokens
            else "glpat-" + secrets.token_urlsafe(15)
        )
        token = Token(
            id=self.next_id("token"),
            name=name,
            user_id=user.id,
            scopes=list(scopes),
            expires_at=expires_at,
            created_at=now,
            value=value,
            description=description if self.descriptions == "stored" else None,
            access_level=access_level,
            resource=resource,
            previous_id=previous_id,
            described=self.descriptions != "ignored",
        )
        self._sync()
        self.tokens[token.id] = token
        self._index_token(token)
        return token

    def add_bot(self, resource: Resource, name: str, access_level: int) -> User:
        """A new bot user for a new resource token, a member of ``resource`` at ``access_level``."""
        bot = self.add_user(f"{resource.kind}_{resource.id}_bot_{secrets.token_hex(16)}", bot=True)
        bot.name = name
        resource.members[bot.id] = access_level
        return bot

    # ---- lookups ------------------------------------------------------------------------------

    def token_by_value(self, value: str) -> Token | None:
        """The token whose secret is ``value``: found by its digest, then compared in constant time."""
        self._sync()
        presented = value.encode(errors="surrogatepass")
        token = self._by_digest.get(hashlib.sha256(presented).digest())
        if token is None or not secrets.compare_digest(token.value.encode(), presented):
            return None
        return token

    def find_resource(self, kind: ResourceKind, ref: str) -> Resource | None:
        """A resource by numeric id or full path."""
        if ref.isdigit():
            return self.resources.get((kind, int(ref)))
        self._sync()
        return self._by_path.get((kind, ref))

    def access_level(self, user: User, resource: Resource) -> int:
        """``user``'s effective role on ``resource``: direct or inherited from parent groups."""
        return OWNER if user.admin else self.member_level(user, resource)

    def member_level(self, user: User, resource: Resource) -> int:
        """``user``'s membership of ``resource``, the highest of direct and inherited (0: none)."""
        level = resource.members.get(user.id, 0)
        parent = resource.parent_id
        while parent is not None:
            group = self.resources[("group", parent)]
            level = max(level, group.members.get(user.id, 0))
            parent = group.parent_id
        return level

    def resource_tokens(self, resource: Resource) -> list[Token]:
        """The tokens of ``resource``, oldest first."""
        self._sync()
        return [t for t in self._by_resource.get((resource.kind, resource.id), ()) if t.resource is resource]

    def revoke_family(self, token: Token) -> list[int]:
        """Reuse detection: revoke every active descendant of ``token``; return their ids."""
        self._sync()
        self.reuse_detections.append(token.id)
        revoked: list[int] = []
        frontier = {token.id}
        while frontier:
            # One generation, oldest first, as a scan of every token in id order would find it.
            found = (child for parent in frontier for child in self._by_previous.get(parent, ()))
            children = sorted(found, key=lambda t: t.id)
            for child in children:
                if not child.revoked:
                    child.revoked = True
                    revoked.append(child.id)
            frontier = {c.id for c in children}
        return revoked

    # ---- the indexes --------------------------------------------------------------------------

    def _index_token(self, token: Token) -> None:
        self._by_digest.setdefault(hashlib.sha256(token.value.encode()).digest(), token)  # the first wins
        if token.resource is not None:
            key = (token.resource.kind, token.resource.id)
            self._by_resource.setdefault(key, []).append(token)  # ids grow: the list stays oldest first
        if token.previous_id is not None:
            self._by_previous.setdefault(token.previous_id, []).append(token)
        self._indexed = (self._indexed[0] + 1, self._indexed[1])

    def _index_resource(self, resource: Resource) -> None:
        self._by_path.setdefault((resource.kind, resource.path), resource)  # the first of a path wins
        self._indexed = (self._indexed[0], self._indexed[1] + 1)

    def _sync(self) -> None:
        """Rebuild the indexes if ``tokens`` or ``resources`` were changed by hand (a test's ``del``)."""
        if self._indexed == (len(self.tokens), len(self.resources)):
            return
        self._by_digest, self._by_resource, self._by_previous, self._by_path = {}, {}, {}, {}
        self._indexed = (0, 0)
        for token in self.tokens.values():
            self._index_token(token)
        for resource in self.resources.values():
            self._index_resource(resource)

    def max_expiry(self, now: datetime) -> date:
        """The last allowed ``expires_at``: today (UTC) + 365 days, or + the admin's lower limit."""
        return now.date() + timedelta(days=min(self.max_lifetime_days, MAX_LIFETIME_DAYS))

    # ---- service accounts ---------------------------------------------------------------------

    def add_service_account(self, owner: Resource | None, name: str = "Service account user") -> User:
        """A service account provisioned by ``owner`` (a group or project), or by the instance."""
        prefix = f"service_account_{owner.kind}_{owner.id}" if owner else "service_account"
        user = self.add_user(f"{prefix}_{secrets.token_hex(8)}")
        user.name, user.service_account, user.provisioned_by = name, True, owner
        return user

    def personal_tokens(self, user: User) -> list[Token]:
        """``user``'s own personal access tokens (no resource token), oldest first."""
        return [t for t in self.tokens.values() if t.user_id == user.id and t.resource is None]
