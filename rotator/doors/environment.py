"""Secrets from the environment: each variable ``NAME`` may also be given as ``NAME_FILE``.

Rules (any breach is a :class:`ConfigError` naming the variable, exit 2): ``NAME`` and
``NAME_FILE`` are not both set; a ``*_FILE`` must be a regular file (a symlink to one is fine) of
UTF-8 text, at most 64 KiB (:mod:`rotator.doors.files`; one trailing newline is dropped); a value is
not empty and is one line with no whitespace, control or format character (:func:`one_line`);
Infisical takes ``ROTATOR_INFISICAL_TOKEN`` **or** ``ROTATOR_INFISICAL_CLIENT_ID`` +
``ROTATOR_INFISICAL_CLIENT_SECRET``, never both modes.
"""

import unicodedata

from collections.abc import Mapping
from dataclasses import dataclass

from rotator.core.errors import ConfigError
from rotator.core.secret import Secret
from rotator.doors.files import SECRET_FILE_LIMIT, read_text_file


GITLAB_TOKEN = "ROTATOR_GITLAB_TOKEN"  # noqa: S105 - a variable's name
INFISICAL_TOKEN = "ROTATOR_INFISICAL_TOKEN"  # noqa: S105 - a variable's name
INFISICAL_CLIENT_ID = "ROTATOR_INFISICAL_CLIENT_ID"
INFISICAL_CLIENT_SECRET = "ROTATOR_INFISICAL_CLIENT_SECRET"  # noqa: S105 - a variable's name
WEBHOOK_URL = "ROTATOR_WEBHOOK_URL"
API_TOKEN = "ROTATOR_API_TOKEN"  # noqa: S105 - a variable's name
#: A PostgreSQL journal's password (never inside state.url or a `state copy` URL).
STATE_PASSWORD = "ROTATOR_STATE_PASSWORD"  # noqa: S105 - a variable's name
#: Unicode categories no credential holds: controls (NUL, CR, LF, ESC), format characters (a BOM,
#: a zero-width space, bidi controls), lone surrogates, and the space and line separators.
_NOT_IN_A_SECRET = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class Secrets:
    """The credentials rotator acts with."""

    gitlab_token: Secret
    infisical_token: Secret | None
    infisical_client_id: str | None
    infisical_client_secret: Secret | None


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


def load_secrets(environ: Mapping[str, str]) -> Secrets:
    """Read and check every secret variable; see the module docstring."""
    gitlab = read_variable(environ, GITLAB_TOKEN)
    if gitlab is None:
        raise ConfigError(
            GITLAB_TOKEN, "is not set: the GitLab token rotator acts with (api scope, Maintainer+)"
        )
    token = read_variable(environ, INFISICAL_TOKEN)
    client_id = read_variable(environ, INFISICAL_CLIENT_ID)
    client_secret = read_variable(environ, INFISICAL_CLIENT_SECRET)
    if token is not None and (client_id is not None or client_secret is not None):
        raise ConfigError(
            INFISICAL_TOKEN, f"set either {INFISICAL_TOKEN} or the client id and secret, not both"
        )
    if token is None and (client_id is None) != (client_secret is None):
        missing = INFISICAL_CLIENT_SECRET if client_secret is None else INFISICAL_CLIENT_ID
        raise ConfigError(
            missing, "is not set; Universal Auth needs both the client id and the client secret"
        )
    if token is None and client_id is None:
        raise ConfigError(
            INFISICAL_TOKEN,
            f"is not set: give {INFISICAL_TOKEN}, or {INFISICAL_CLIENT_ID} and {INFISICAL_CLIENT_SECRET}",
        )
    return Secrets(
        gitlab_token=Secret(gitlab),
        infisical_token=Secret(token) if token is not None else None,
        infisical_client_id=client_id,
        infisical_client_secret=Secret(client_secret) if client_secret is not None else None,
    )


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
