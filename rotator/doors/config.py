"""The configuration file and the secret environment, validated; every error names its key.

:func:`load_config` reads one YAML file; :func:`parse_config` validates a mapping (tests call it
with dicts). ``defaults`` merge into each target per key, ``token`` included, so a target's
``token.lifetime`` keeps ``defaults.token.scopes``. Secrets never come from the file:
:func:`rotator.doors.environment.load_secrets` reads them from the environment.
"""

import re
import uuid

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rotator.core.durations import parse_duration
from rotator.core.errors import ConfigError
from rotator.core.inventory import UNMANAGED
from rotator.core.model import Kind
from rotator.core.spec import EngineSpec, RotationSpec, TokenShape
from rotator.doors.config_errors import UUID_HINT, describe, retell, unknown_key
from rotator.doors.config_yaml import Locate, load_located
from rotator.doors.files import CONFIG_FILE_LIMIT, read_text_file


ACCESS_LEVELS = {"guest": 10, "planner": 15, "reporter": 20, "developer": 30, "maintainer": 40, "owner": 50}
#: What GitLab accepts for a project access token (``resource_bot_scopes``).
TOKEN_SCOPES = frozenset(
    {
        "api", "read_api", "create_runner", "manage_runner", "k8s_proxy", "self_rotate",
        "read_repository", "write_repository", "read_registry", "write_registry",
        "read_virtual_registry", "write_virtual_registry", "read_observability",
        "write_observability", "ai_features",
    },
)  # fmt: skip
#: A service account's token is an ordinary personal access token: ``read_user`` too.
PERSONAL_SCOPES = TOKEN_SCOPES | {"read_user"}
_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_PATH = re.compile(r"^[\w.-]+(?:/[\w.-]+)+$")
_GROUP_PATH = re.compile(r"^[\w.-]+(?:/[\w.-]+)*$")  # a top-level group is one segment
#: The keys naming whose tokens a target rotates: exactly one per target (architecture §9).
OWNER_KEYS = ("project", "group", "service_account")


def _written(value: object, what: str) -> None:
    """An owner key written empty (``project:``) is named itself, not read as a missing owner."""
    if value is None:
        msg = f"must be {what}, not empty"
        raise ValueError(msg)


def _ref(value: object, what: str, path: re.Pattern[str]) -> int | str:
    """A numeric id (``"42"`` read as 42) or a path of ``what``, else a ValueError naming the form."""
    hint = f'must be a numeric id or a "{what}" path'
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(hint)  # noqa: TRY004 - pydantic reports only ValueError as a field error
    if isinstance(value, str) and value.isascii() and value.isdecimal():  # "0" is checked as a number
        value = int(value)
    if isinstance(value, int) and value < 1:
        msg = "a numeric id is at least 1"
        raise ValueError(msg)
    if isinstance(value, str) and not path.fullmatch(value):
        raise ValueError(hint)
    return value


Ref = Annotated[int | str, BeforeValidator(lambda v: _ref(v, "group/project", _PATH))]
GroupRef = Annotated[int | str, BeforeValidator(lambda v: _ref(v, "group/sub", _GROUP_PATH))]


def _not_bool(value: object) -> object:
    if isinstance(value, bool):  # YAML reads yes/no/on/off as booleans; pydantic would count True as 1
        msg = f"must be a number, not {str(value).lower()}"
        raise ValueError(msg)  # noqa: TRY004 - pydantic reports only ValueError as a field error
    return value


#: What YAML gave, in words, for a value that is not a duration's text.
_KINDS = {
    "bytes": "binary data (!!binary)",
    "NoneType": "an empty value",
    "list": "a list",
    "dict": "a mapping",
    "date": "a date",
    "datetime": "a timestamp",
}


def _duration(value: object) -> object:
    if isinstance(value, bool):  # as above; parse_duration then explains what a duration looks like
        value = str(value).lower()
    if isinstance(value, int | float):
        # Not seconds: `rotate_before: 3` meant days or hours, never a rotation 3 s before expiry.
        msg = "a bare number is not a duration; write a unit, e.g. 7d (or 12h, 10m, 45s)"
        raise ValueError(msg)  # noqa: TRY004 - as in _not_bool
    if isinstance(value, timedelta):  # set by code (defaults, tests), never read from YAML
        return value
    if not isinstance(value, str):
        # Not handed to pydantic, whose timedelta parser takes bytes (`!!binary UDFE` is P1D),
        # ISO 8601 and "12:30"; the config's only spelling is <digits><unit>.
        kind = _KINDS.get(type(value).__name__, type(value).__name__)
        msg = f"{kind} is not a duration; write a whole number and a unit, like 45s, 10m, 12h or 30d"
        raise ValueError(msg)  # noqa: TRY004 - as in _not_bool
    try:
        return parse_duration(value)
    except OverflowError:
        msg = f"{value!r} is too long to be a duration"
        raise ValueError(msg) from None


def _within(least: timedelta, most: timedelta) -> AfterValidator:
    """A duration from ``least`` to ``most``, refused in the file's spelling (``1h``, not a timedelta)."""

    def check(value: timedelta) -> timedelta:
        if not least <= value <= most:
            msg = f"must be from {describe(least)} to {describe(most)}, not {describe(value)}"
            raise ValueError(msg)
        return value

    return AfterValidator(check)


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Count = Annotated[int, BeforeValidator(_not_bool)]
#: An HTTP timeout: at most a day (the socket layer overflows on 999999999d).
Timeout = Annotated[Duration, _within(timedelta(seconds=1), timedelta(days=1))]


def _access_level(value: object) -> object:
    if isinstance(value, str) and not value.isdigit():
        if value not in ACCESS_LEVELS:
            msg = f"{value!r} is not a role; use one of {', '.join(ACCESS_LEVELS)} or 10..50"
            raise ValueError(msg)
        return ACCESS_LEVELS[value]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _http_url(value: str) -> str:
    msg = "must be an http(s) URL such as https://gitlab.example.com (ASCII: write a domain as xn--...)"
    # ASCII and printable: httpx refuses a non-IDNA host (http://µ) with InvalidURL, not a connect error.
    if not re.match(r"^https?://[^/\s]+", value) or not value.isascii() or not value.isprintable():
        raise ValueError(msg)
    try:
        parts = urlsplit(value)  # http://[::1 raises ValueError
        _ = parts.port  # so does a port that is not a number from 0 to 65535
    except ValueError:
        raise ValueError(msg) from None
    if not parts.hostname or " " in value:
        raise ValueError(msg)
    if parts.username is not None or parts.query or parts.fragment or value.endswith(":"):
        # Credentials in a URL would land in the journal's keys and in messages; never accept them.
        msg = "must be a plain http(s) URL: no user:password@, ?query, #fragment or empty port"
        raise ValueError(msg)
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class GitLabSettings(_Strict):
    """``gitlab:``: where GitLab is and how hard rotator may press it."""

    url: HttpUrl
    timeout: Timeout = timedelta(seconds=30)
    requests_per_minute: Count = Field(default=600, ge=1)


class InfisicalSettings(_Strict):
    """``infisical:``: where Infisical is, and its rate limits."""

    url: HttpUrl = "https://app.infisical.com"
    timeout: Timeout = timedelta(seconds=30)
    reads_per_minute: Count = Field(default=60, ge=1)
    writes_per_minute: Count = Field(default=200, ge=1)


class StateSettings(_Strict):
    """``state:``: the journal's location, and how long a target's lease lasts unless renewed."""

    url: str = "sqlite:///rotator-state.db"
    #: A run renews its lease every 30 s (a third of this, when shorter); a worker that dies holds
    #: its targets until it lapses. Short values are for tests; a long one delays recovery.
    lease_ttl: Annotated[Duration, _within(timedelta(seconds=5), timedelta(days=1))] = timedelta(minutes=10)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            msg = "must start with sqlite:/// (a file) or postgresql://"
            raise ValueError(msg)
        if value.startswith("sqlite:///"):
            return value
        try:
            parts = urlsplit(value)
            _ = parts.port
        except ValueError:
            msg = "must be a URL such as postgresql://rotator@db.example.com:5432/rotator"
            raise ValueError(msg) from None
        if parts.password is not None or "password" in parse_qs(parts.query):
            # Never quoted back: the message says what is wrong, not what was written.
            msg = (
                "must not hold a password: give it in ROTATOR_STATE_PASSWORD or"
                " ROTATOR_STATE_PASSWORD_FILE, or in a libpq passfile (~/.pgpass)"
            )
            raise ValueError(msg)
        return value


class TokenSpec(_Strict):
    """``token:``: what each new token looks like."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    scopes: tuple[str, ...]
    access_level: Annotated[Literal[10, 15, 20, 30, 40, 50], BeforeValidator(_access_level)] = 40
    lifetime: Duration = timedelta(days=30)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - PERSONAL_SCOPES)
        if unknown:
            accepted = ", ".join(sorted(TOKEN_SCOPES))
            msg = (
                f"unknown scope(s) {', '.join(unknown)}; project and group tokens accept {accepted}"
                " (a service account's, read_user too)"
            )
            raise ValueError(msg)
        if not {"api", "read_api"} & set(value):
            msg = "must include api or read_api: Infisical validates a token by calling GET /user"
            raise ValueError(msg)
        return value

    @field_validator("lifetime")
    @classmethod
    def _whole_days(cls, value: timedelta) -> timedelta:
        if value % timedelta(days=1) or not timedelta(days=2) <= value <= timedelta(days=365):
            msg = "must be whole days, from 2d to 365d (GitLab expiry is a calendar date)"
            raise ValueError(msg)
        return value


class ServiceAccount(_Strict):
    """``service_account:`` of a target: the user, and the group or project that provisioned it."""

    user_id: Count = Field(ge=1)
    group: GroupRef | None = None
    project: Ref | None = None

    @model_validator(mode="after")
    def _one_home(self) -> "ServiceAccount":
        if self.group is not None and self.project is not None:
            msg = (
                "give group (a group's service account) or project (a project's), not both;"
                " neither: an instance service account"
            )
            raise ValueError(msg)
        return self


class Target(_Strict):
    """One entry of ``targets:``, with ``defaults`` already merged in."""

    name: str
    project: int | str | None = None
    group: GroupRef | None = None
    service_account: ServiceAccount | None = None
    connection_id: uuid.UUID
    token: TokenSpec
    rotate_every: Duration | None = None
    rotate_before: Duration | None = None
    grace: Duration = timedelta(hours=1)
    adopt_token_id: Count | None = Field(default=None, ge=1)
    hold_revoke_if_used: bool = True
    #: A 5-field cron expression in UTC; checked in full by :func:`rotator.doors.wiring.load`.
    schedule: str | None = Field(default=None, min_length=9, max_length=200)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):  # match: $ also matches before a final newline
            msg = "must be lowercase letters, digits and hyphens, like app-deploy"
            raise ValueError(msg)
        if value == UNMANAGED:
            msg = (
                f"{UNMANAGED} is reserved: the expiry watch names tokens no target manages so; choose another"
            )
            raise ValueError(msg)
        return value

    @field_validator("connection_id", mode="before")
    @classmethod
    def _connection_text(cls, value: object) -> object:
        # pydantic would also take 16 bytes (!!binary) as a UUID; the connection's id is written as text.
        if not isinstance(value, str):
            msg = f"must be {UUID_HINT}, not {describe(value)}"
            raise ValueError(msg)  # noqa: TRY004 - as in _not_bool
        return value

    @field_validator("project", mode="before")
    @classmethod
    def _project(cls, value: object) -> object:
        # Before the int | str union, whose errors would name a member (project.int), not the key.
        _written(value, 'a numeric id or a "group/project" path')
        return _ref(value, "group/project", _PATH)

    @field_validator("group", "service_account", mode="before")
    @classmethod
    def _owner_written(cls, value: object, info: ValidationInfo) -> object:
        what = 'a numeric id or a "group/sub" path' if info.field_name == "group" else "a map with user_id"
        _written(value, what)
        return value

    @property
    def kind(self) -> Kind:
        """Whose tokens: the one owner key given."""
        if self.group is not None:
            return Kind.GROUP
        return Kind.SERVICE_ACCOUNT if self.service_account is not None else Kind.PROJECT

    @property
    def owner_ref(self) -> int | str:
        """The project's or group's id or path, or the service account's user id."""
        if self.service_account is not None:
            return self.service_account.user_id
        owner = self.group if self.group is not None else self.project
        assert owner is not None  # noqa: S101 - _one_owner made sure
        return owner

    @property
    def via(self) -> tuple[Kind, int | str] | None:
        """A service account's group or project; ``None`` otherwise (and for an instance one)."""
        account = self.service_account
        if account is None or (account.group is None and account.project is None):
            return None
        return (Kind.GROUP, account.group) if account.group is not None else (Kind.PROJECT, account.project)  # type: ignore[return-value]

    @model_validator(mode="after")
    def _one_owner(self) -> "Target":
        given = [key for key in OWNER_KEYS if getattr(self, key) is not None]
        if len(given) != 1:
            found = f"has {' and '.join(given)}" if given else "has none"
            msg = f"needs exactly one of project, group, service_account; {found}"
            raise ValueError(msg)
        if self.kind is not Kind.SERVICE_ACCOUNT and "read_user" in self.token.scopes:
            msg = f"token.scopes: read_user is for a service account's tokens, not {self.kind.value} tokens"
            raise ValueError(msg)
        return self

    @property
    def renew_before(self) -> timedelta:
        """``rotate_before``, defaulting to a third of the lifetime."""
        return self.rotate_before if self.rotate_before is not None else self.token.lifetime / 3

    @property
    def token_base_name(self) -> str:
        """The base of each new token's name."""
        return self.token.name or self.name

    @model_validator(mode="after")
    def _timings(self) -> "Target":
        if self.renew_before >= self.token.lifetime:
            msg = (
                f"rotate_before: must be shorter than token.lifetime ({describe(self.token.lifetime)}),"
                f" not {describe(self.renew_before)}"
            )
            raise ValueError(msg)
        between = (  # not `or`: a rotate_every of 0s is a value (and too short), not an absence
            self.rotate_every if self.rotate_every is not None else self.token.lifetime - self.renew_before
        )
        if self.grace >= between:
            msg = (
                f"grace: must be shorter than the time between rotations ({describe(between)}: rotate_every,"
                f" or lifetime - rotate_before), not {describe(self.grace)}"
            )
            raise ValueError(msg)
        return self


class DaemonSettings(_Strict):
    """``daemon:``: the long-running mode's address and rhythm."""

    listen: str = "0.0.0.0:8080"  # a container's port is reached through its Service
    check_interval: Annotated[Duration, _within(timedelta(seconds=1), timedelta(days=1))] = timedelta(
        minutes=5
    )
    jitter: Annotated[Duration, _within(timedelta(0), timedelta(hours=1))] = timedelta(seconds=30)
    shutdown_timeout: Annotated[Duration, _within(timedelta(0), timedelta(hours=1))] = timedelta(minutes=5)
    #: A ``POST /v1/targets/NAME/rotate`` within this long of the target's last forced rotation
    #: (measured from the journal, so fleet-wide) is answered with that rotation; ``0s``: never.
    min_trigger_interval: Duration = timedelta(minutes=1)

    @field_validator("min_trigger_interval")
    @classmethod
    def _trigger_interval(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= timedelta(days=1):
            msg = "must be from 0s (every trigger rotates) to 1d"
            raise ValueError(msg)
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, port = split_listen(value)
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:  # noqa: PLR2004 - TCP ports
            msg = "must be HOST:PORT, such as 0.0.0.0:8080 or [::]:8080 (port 0: any free port)"
            raise ValueError(msg)
        return value


def split_listen(value: str) -> tuple[str, str]:
    """``daemon.listen`` as (host, port); an IPv6 host is written in brackets."""
    host, _, port = value.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), port


def _webhook_url(value: str) -> str:
    # Looser than HttpUrl: some receivers carry their credential in the query (?token=...).
    parts = urlsplit(value) if value.isascii() and value.isprintable() else None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname or " " in value:
        msg = "must be an http(s) URL, such as https://hooks.slack.com/services/..."
        raise ValueError(msg)
    return value


class NotifySettings(_Strict):
    """``notify:``: where failure notifications go (``ROTATOR_WEBHOOK_URL`` overrides)."""

    webhook_url: Annotated[str, AfterValidator(_webhook_url)] | None = None


class WatchSettings(_Strict):
    """``watch:``: scopes whose tokens ``rotator inventory`` and the daemon's expiry watch list too.

    A watched group lists its own group access tokens, its service accounts' and its projects'
    tokens; ``include_subgroups`` (default on) its subgroups' at any depth too. ``warn_before``
    is when an unmanaged token's coming expiry is worth a word; ``interval`` how often the
    daemon lists them again; ``expiry_watch: false`` turns the daemon's watch off (its daily
    listing of every scope, its gauges and digests), leaving ``rotator inventory`` as it is.
    """

    groups: tuple[GroupRef, ...] = ()
    projects: tuple[Ref, ...] = ()
    include_subgroups: StrictBool = True
    warn_before: Annotated[Duration, _within(timedelta(hours=1), timedelta(days=365))] = timedelta(days=14)
    interval: Annotated[Duration, _within(timedelta(hours=1), timedelta(days=30))] = timedelta(days=1)
    expiry_watch: StrictBool = True

    @model_validator(mode="after")
    def _once_each(self) -> "WatchSettings":
        for name, refs in (("groups", self.groups), ("projects", self.projects)):
            seen: dict[int | str, int] = {}
            for index, ref in enumerate(refs):
                if ref in seen:
                    msg = f"{name}[{index}]: repeats watch.{name}[{seen[ref]}]"
                    raise ValueError(msg)
                seen[ref] = index
        return self


class Config(_Strict):
    """The whole file."""

    gitlab: GitLabSettings
    infisical: InfisicalSettings = InfisicalSettings()
    state: StateSettings = StateSettings()
    daemon: DaemonSettings = DaemonSettings()
    notify: NotifySettings = NotifySettings()
    watch: WatchSettings = WatchSettings()
    max_concurrent_rotations: Count = Field(default=4, ge=1, le=64)
    targets: tuple[Target, ...] = Field(min_length=1)
    base_dir: Path = Path()

    @model_validator(mode="after")
    def _unique(self) -> "Config":
        _no_duplicates(self.targets, lambda t: t.name, "name")
        _no_duplicates(self.targets, lambda t: str(t.connection_id), "connection_id")
        _no_duplicates(self.targets, lambda t: (t.kind, str(t.owner_ref), t.token_base_name), "token.name")
        _no_duplicates(self.targets, lambda t: t.adopt_token_id, "adopt_token_id")
        return self


def rotation_spec(target: Target) -> RotationSpec:
    """What the engine needs of one configured target, as a frozen value."""
    token = target.token
    return RotationSpec(
        name=target.name,
        project=target.owner_ref,
        kind=target.kind,
        via=target.via,
        connection_id=str(target.connection_id),
        token=TokenShape(tuple(token.scopes), token.access_level, token.lifetime),
        token_base_name=target.token_base_name,
        renew_before=target.renew_before,
        grace=target.grace,
        rotate_every=target.rotate_every,
        schedule=target.schedule,
        adopt_token_id=target.adopt_token_id,
        hold_revoke_if_used=target.hold_revoke_if_used,
    )


def engine_spec(config: Config) -> EngineSpec:
    """What the engine needs of the whole config: ``gitlab.url``, its concurrency, the targets."""
    return EngineSpec(
        gitlab_url=config.gitlab.url,
        targets=tuple(rotation_spec(t) for t in config.targets),
        max_concurrent_rotations=config.max_concurrent_rotations,
    )


def _no_duplicates(targets: Sequence[Target], key: Callable[[Target], object], field: str) -> None:
    seen: dict[object, int] = {}
    for index, target in enumerate(targets):
        value = key(target)
        if value is None:  # unset (adopt_token_id); filtering first would renumber the targets
            continue
        if value in seen:
            msg = f"targets[{index}].{field}: repeats targets[{seen[value]}]"
            raise ValueError(msg)
        seen[value] = index


_DEFAULTS_FORBIDDEN = ("name", *OWNER_KEYS, "connection_id", "adopt_token_id")
#: The keys each mapping of the file takes, in the order the README documents them.
_FILE_KEYS = (*(f for f in Config.model_fields if f not in {"targets", "base_dir"}), "defaults", "targets")
_SECTION_KEYS = {
    name: tuple(model.model_fields)
    for name, model in (
        ("gitlab", GitLabSettings),
        ("infisical", InfisicalSettings),
        ("state", StateSettings),
        ("daemon", DaemonSettings),
        ("notify", NotifySettings),
        ("watch", WatchSettings),
    )
}
_TARGET_KEYS = tuple(Target.model_fields)
_TOKEN_KEYS = tuple(TokenSpec.model_fields)

Loc = tuple[int | str, ...]


def _merge(defaults: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **target}
    if isinstance(defaults.get("token"), Mapping) and isinstance(target.get("token"), Mapping):
        merged["token"] = {**defaults["token"], **target["token"]}
    return merged


def _key(loc: Loc) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            key += f"[{part}]"
        else:  # a bool is a key, not a list index: YAML reads an unquoted `yes:` as true
            name = str(part).lower() if isinstance(part, bool) else str(part)
            key += f".{name}" if key else name
    return key or "(file)"


def _loc(key: str) -> Loc:
    """``targets[1].token.name`` as ``("targets", 1, "token", "name")`` (keys our own rules name)."""
    return tuple(int(part) if part.isdigit() else part for part in re.findall(r"[^.\[\]]+", key))


def _mappings(raw: Mapping[Any, Any]) -> Iterator[tuple[Loc, Mapping[Any, Any], tuple[str, ...]]]:
    """Each mapping of the file with the keys it takes: the top level first, then in file order."""
    yield (), raw, _FILE_KEYS
    for name, value in raw.items():
        if name in _SECTION_KEYS and isinstance(value, Mapping):
            yield (name,), value, _SECTION_KEYS[name]
        elif name == "defaults" and isinstance(value, Mapping):
            yield from _target_mappings(("defaults",), value)
        elif name == "targets" and isinstance(value, list):
            for index, target in enumerate(value):
                if isinstance(target, Mapping):
                    yield from _target_mappings(("targets", index), target)


def _target_mappings(
    loc: Loc, target: Mapping[Any, Any]
) -> Iterator[tuple[Loc, Mapping[Any, Any], tuple[str, ...]]]:
    yield loc, target, _TARGET_KEYS
    if isinstance(target.get("token"), Mapping):
        yield (*loc, "token"), target["token"], _TOKEN_KEYS


def _refuse_unknown_keys(raw: Mapping[Any, Any], locate: Locate) -> None:
    """The first key no mapping takes, named with the nearest known key.

    Before pydantic: a misspelt key is the mistake, and "targets[0].token: is required" (for a
    misspelt ``default:``) or "connection_id: is required" (for ``conection_id:``) its side effect.
    """
    for loc, mapping, known in _mappings(raw):
        for key in mapping:
            if key not in known:
                path = (*loc, key)
                raise ConfigError(_key(path), unknown_key(key, known, locate(path)))


def _line(locate: Locate, loc: Loc) -> str:
    """`` (line N)`` where ``loc`` is written; a target's field may come from ``defaults``."""
    line = locate(loc)
    if line is None and len(loc) > 2 and loc[0] == "targets":  # noqa: PLR2004 - targets, index, field
        line = locate(("defaults", *loc[2:]))
    return f" (line {line})" if line else ""


def parse_config(data: object, *, base_dir: Path = Path(), locate: Locate | None = None) -> Config:
    """Validate a parsed YAML document; raise :class:`ConfigError` naming the first bad key.

    ``locate`` tells where a key is written in the file, for the message; dicts built in code have none.
    """
    where: Locate = locate or (lambda _: None)
    if data is None:
        raise ConfigError("(file)", "is empty; write gitlab: and targets: (see config/example.yaml)")
    if not isinstance(data, Mapping):
        # Never the text itself: a --config naming a token's or an env file by mistake would print it.
        written = describe(data, secret=True)
        problem = f"must be a mapping with gitlab:, targets: and optional sections, not {written}"
        raise ConfigError("(file)", problem)
    raw = dict(data)
    _refuse_unknown_keys(raw, where)
    defaults = raw.pop("defaults", None)
    defaults = {} if defaults is None else defaults
    if not isinstance(defaults, Mapping):
        problem = f"must be a mapping of target fields, not {describe(defaults)}{_line(where, ('defaults',))}"
        raise ConfigError("defaults", problem)
    for forbidden in _DEFAULTS_FORBIDDEN:
        if forbidden in defaults:
            line = _line(where, ("defaults", forbidden))
            raise ConfigError(f"defaults.{forbidden}", f"is per target; it cannot be a default{line}")
    targets = raw.get("targets")
    if isinstance(targets, list):
        raw["targets"] = [_merge(defaults, t) if isinstance(t, Mapping) else t for t in targets]
    try:
        return Config.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as error:
        first = error.errors()[0]
        loc, problem = tuple(first["loc"]), retell(first)
        # Cross-field rules raise "field: problem" so the key can name the field itself.
        named = re.match(r"^([\w.\[\]]+): (.+)$", problem) if first["type"] == "value_error" else None
        if named:
            loc, problem = (*loc, *_loc(named.group(1))), named.group(2)
        shown = loc[:-1] if first["type"] == "missing" else loc  # the line of the mapping lacking it
        raise ConfigError(_key(loc), problem + _line(where, shown)) from None


def load_config(path: Path) -> Config:
    """Read and validate the YAML file at ``path``."""
    text = read_text_file(str(path), key="--config", limit=CONFIG_FILE_LIMIT, what="a config file")
    data, locate = load_located(text, path)
    return parse_config(data, base_dir=path.resolve().parent, locate=locate)
