"""Secrets from the environment: each variable ``NAME`` may also be given as ``NAME_FILE``.

Rules (any breach is a :class:`ConfigError` naming the variable, exit 2): ``NAME`` and
``NAME_FILE`` are not both set; a ``*_FILE`` must be a regular file (a symlink to one is fine) of
UTF-8 text, at most 64 KiB (:mod:`rotator.doors.files`; one trailing newline is dropped); a value is
not empty and is one line with no whitespace, control or format character (:func:`one_line`).

Infisical takes exactly one login mode: ``ROTATOR_INFISICAL_TOKEN`` (a static access token),
``ROTATOR_INFISICAL_CLIENT_ID`` + ``ROTATOR_INFISICAL_CLIENT_SECRET`` (Universal Auth), or
``ROTATOR_INFISICAL_IDENTITY_ID`` (Kubernetes Auth) with the pod's projected service-account token,
read from ``ROTATOR_INFISICAL_KUBERNETES_TOKEN_FILE`` (default :data:`KUBERNETES_TOKEN_DEFAULT`).
That token is a file only, never a variable: the kubelet rotates it, so it is read again at every
login (:func:`jwt_reader`); it must be readable at start, so a missing mount is exit 2, not a
refused login later.
"""

import re
import unicodedata

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rotator.core.errors import ConfigError
from rotator.core.secret import Secret
from rotator.doors.files import SECRET_FILE_LIMIT, read_text_file


GITLAB_TOKEN = "ROTATOR_GITLAB_TOKEN"  # noqa: S105 - a variable's name
INFISICAL_TOKEN = "ROTATOR_INFISICAL_TOKEN"  # noqa: S105 - a variable's name
INFISICAL_CLIENT_ID = "ROTATOR_INFISICAL_CLIENT_ID"
INFISICAL_CLIENT_SECRET = "ROTATOR_INFISICAL_CLIENT_SECRET"  # noqa: S105 - a variable's name
INFISICAL_IDENTITY_ID = "ROTATOR_INFISICAL_IDENTITY_ID"
INFISICAL_KUBERNETES_TOKEN_FILE = "ROTATOR_INFISICAL_KUBERNETES_TOKEN_FILE"  # noqa: S105 - a variable's name
#: Where Kubernetes mounts a pod's service-account token unless told otherwise.
KUBERNETES_TOKEN_DEFAULT = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
WEBHOOK_URL = "ROTATOR_WEBHOOK_URL"
API_TOKEN = "ROTATOR_API_TOKEN"  # noqa: S105 - a variable's name
#: A PostgreSQL journal's password (never inside state.url or a `state copy` URL).
STATE_PASSWORD = "ROTATOR_STATE_PASSWORD"  # noqa: S105 - a variable's name
#: Unicode categories no credential holds: controls (NUL, CR, LF, ESC), format characters (a BOM,
#: a zero-width space, bidi controls), lone surrogates, and the space and line separators.
_NOT_IN_A_SECRET = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Secrets:
    """The credentials rotator acts with."""

    gitlab_token: Secret
    infisical_token: Secret | None
    infisical_client_id: str | None
    infisical_client_secret: Secret | None
    infisical_identity_id: str | None = None
    #: Kubernetes Auth: the service-account token's path (read at every login, never kept here).
    infisical_kubernetes_token_file: str | None = None


def one_line(key: str, value: str) -> str:
    """``value`` if it is one line of visible characters; else a :class:`ConfigError` on ``key``.

    Why: a token read with a second newline (``echo`` into a file that already ended in one), or a
    ``*_FILE`` pointed at ``/proc/self/environ``, would otherwise be sent as a header; HTTP
    libraries refuse such a header with an exception that quotes the value, and that text could
    reach a log or an alert that the literal-value redaction does not match. The refusal names the
    offending character's code point only, never the value.
    """
    for char in value:
        if char.isspace() or unicodedata.category(char) in _NOT_IN_A_SECRET:
            problem = "a secret is one line with no spaces or control characters"
            raise ConfigError(key, f"{problem} (it holds U+{ord(char):04X})")
    return value


def read_variable(environ: Mapping[str, str], name: str) -> str | None:
    """``name`` from ``environ`` or from the file ``name_FILE`` points at; ``None`` if neither.

    Every variable read here is a credential or carries one (the webhook URL), so each value must
    pass :func:`one_line`.
    """
    direct, file_name = environ.get(name), environ.get(f"{name}_FILE")
    if direct is not None and file_name is not None:
        raise ConfigError(name, f"set either {name} or {name}_FILE, not both")
    if file_name is not None:
        value = read_text_file(file_name, key=f"{name}_FILE", limit=SECRET_FILE_LIMIT, what="a secret file")
        value = value.removesuffix("\n").removesuffix("\r")
        if not value.strip():
            raise ConfigError(f"{name}_FILE", f"{file_name} is empty")
        return one_line(f"{name}_FILE", value)
    if direct is not None and not direct.strip():
        raise ConfigError(name, "is set but empty")
    if direct is not None:
        try:
            direct.encode("utf-8")  # Python hands non-UTF-8 bytes over as lone surrogates
        except UnicodeEncodeError:
            raise ConfigError(name, "is not UTF-8 text") from None
        return one_line(name, direct)
    return None


def gitlab_token(environ: Mapping[str, str]) -> Secret:
    """The manager token (``ROTATOR_GITLAB_TOKEN`` or ``_FILE``), for a command needing no other secret."""
    gitlab = read_variable(environ, GITLAB_TOKEN)
    if gitlab is None:
        raise ConfigError(
            GITLAB_TOKEN, "is not set: the GitLab token rotator acts with (api scope, Maintainer+)"
        )
    return Secret(gitlab)


def load_secrets(environ: Mapping[str, str]) -> Secrets:
    """Read and check every secret variable; see the module docstring."""
    gitlab = gitlab_token(environ)
    token = read_variable(environ, INFISICAL_TOKEN)
    client_id = read_variable(environ, INFISICAL_CLIENT_ID)
    client_secret = read_variable(environ, INFISICAL_CLIENT_SECRET)
    identity_id = read_variable(environ, INFISICAL_IDENTITY_ID)
    if identity_id is None and INFISICAL_KUBERNETES_TOKEN_FILE in environ:
        raise ConfigError(
            INFISICAL_KUBERNETES_TOKEN_FILE,
            f"is set but {INFISICAL_IDENTITY_ID} is not: Kubernetes Auth needs the identity's id"
            " (for another login mode, remove this variable)",
        )
    _one_mode(token=token, client_id=client_id, client_secret=client_secret, identity_id=identity_id)
    token_file = _kubernetes_token_file(environ, identity_id)
    return Secrets(
        gitlab_token=gitlab,
        infisical_token=Secret(token) if token is not None else None,
        infisical_client_id=client_id,
        infisical_client_secret=Secret(client_secret) if client_secret is not None else None,
        infisical_identity_id=identity_id,
        infisical_kubernetes_token_file=token_file,
    )


def _one_mode(
    *,
    token: str | None,
    client_id: str | None,
    client_secret: str | None,
    identity_id: str | None,
) -> None:
    """Exactly one Infisical login mode, complete; else a ConfigError naming the variables."""
    modes = {
        INFISICAL_TOKEN: token is not None,
        f"{INFISICAL_CLIENT_ID} + {INFISICAL_CLIENT_SECRET}": client_id is not None
        or client_secret is not None,
        INFISICAL_IDENTITY_ID: identity_id is not None,
    }
    chosen = [name for name, given in modes.items() if given]
    if len(chosen) > 1:
        values = (token, client_id, client_secret, identity_id)
        names = (INFISICAL_TOKEN, INFISICAL_CLIENT_ID, INFISICAL_CLIENT_SECRET, INFISICAL_IDENTITY_ID)
        present = [n for n, v in zip(names, values, strict=True) if v is not None]
        raise ConfigError(
            present[0],
            f"is set as well as {' and '.join(present[1:])}: give exactly one Infisical login, {_MODES}",
        )
    if token is None and identity_id is None and (client_id is None) != (client_secret is None):
        missing = INFISICAL_CLIENT_SECRET if client_secret is None else INFISICAL_CLIENT_ID
        raise ConfigError(
            missing, "is not set; Universal Auth needs both the client id and the client secret"
        )
    if not chosen:
        raise ConfigError(INFISICAL_TOKEN, f"is not set: give one Infisical login, {_MODES}")


_MODES = (
    f"{INFISICAL_TOKEN} (an access token), {INFISICAL_CLIENT_ID} + {INFISICAL_CLIENT_SECRET}"
    f" (Universal Auth), or {INFISICAL_IDENTITY_ID} (Kubernetes Auth)"
)


def given_as(environ: Mapping[str, str], name: str) -> str:
    """The variable a value was read from: ``NAME_FILE`` if that is set, else ``NAME``."""
    return f"{name}_FILE" if f"{name}_FILE" in environ else name


def _kubernetes_token_file(environ: Mapping[str, str], identity_id: str | None) -> str | None:
    """Kubernetes Auth's token path, checked readable now; ``None`` without Kubernetes Auth."""
    if identity_id is None:
        return None
    if not _UUID.fullmatch(identity_id):
        raise ConfigError(
            given_as(environ, INFISICAL_IDENTITY_ID),
            "is not an identity id (a UUID: the machine identity's ID in Infisical)",
        )
    path = environ.get(INFISICAL_KUBERNETES_TOKEN_FILE, KUBERNETES_TOKEN_DEFAULT)
    jwt_reader(environ, path)()  # a missing mount is a config error now, not a refused login later
    return path


def jwt_reader(environ: Mapping[str, str], path: str) -> Callable[[], Secret]:
    """Reads the service-account token at ``path``: a :class:`ConfigError` naming the path on failure."""
    key = INFISICAL_KUBERNETES_TOKEN_FILE
    defaulted = key not in environ

    def read() -> Secret:
        try:
            value = read_text_file(
                path, key=key, limit=SECRET_FILE_LIMIT, what="a service-account token file"
            )
        except ConfigError as error:
            if defaulted:  # say where the path came from: nobody typed it
                raise ConfigError(key, f"is not set, and the default {error.problem}") from None
            raise
        value = value.removesuffix("\n").removesuffix("\r")
        if not value.strip():
            raise ConfigError(key, f"{path} is empty")
        return Secret(one_line(key, value))

    return read


def webhook_url(environ: Mapping[str, str], configured: str | None) -> Secret | None:
    """Where alerts are posted: ``ROTATOR_WEBHOOK_URL`` (or ``_FILE``) over ``notify.webhook_url``."""
    value = read_variable(environ, WEBHOOK_URL)
    if value is not None and not value.startswith(("http://", "https://")):
        raise ConfigError(WEBHOOK_URL, "must be an http(s) URL")
    value = value if value is not None else configured
    return Secret(value) if value is not None else None


def api_token(environ: Mapping[str, str]) -> Secret | None:
    """The bearer token of the daemon's trigger, ``ROTATOR_API_TOKEN`` (or ``_FILE``); ``None`` if unset."""
    value = read_variable(environ, API_TOKEN)
    return Secret(value) if value is not None else None
