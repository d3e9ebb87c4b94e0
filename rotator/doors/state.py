"""Where the journal lives when ``state.url`` names a PostgreSQL database, and how rotator signs in.

``postgresql://USER@HOST:PORT/DB`` (or ``postgres://``), libpq's query options (``sslmode`` and the
like) passed through as written. The URL never holds the password (the config refuses one there);
it comes from ``ROTATOR_STATE_PASSWORD`` or ``ROTATOR_STATE_PASSWORD_FILE``, read like every other
secret (:func:`rotator.doors.environment.read_variable`), or else libpq finds it in its passfile
(``~/.pgpass``, ``PGPASSFILE``) by itself.

A database that refuses to sign rotator in is a configuration error (exit 2), not an outage: a
refused password names where it came from (:func:`password_source`), a refused account
(``pg_hba.conf``, an unknown role) names ``state.url``, whose user it is.
"""

import os

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from psycopg.conninfo import conninfo_to_dict

from rotator.core.errors import ConfigError, SignInRefusedError
from rotator.core.ports import Journal
from rotator.core.secret import Secret
from rotator.doors.config import Config
from rotator.doors.environment import STATE_PASSWORD, given_as, read_variable
from rotator.journal.memory import MemoryJournal
from rotator.journal.postgres import PostgresJournal, has_journal, server


PASSWORD = STATE_PASSWORD
SCHEMES = ("postgresql://", "postgres://")


def is_postgres(config: Config) -> bool:
    """Whether ``state.url`` names a PostgreSQL database."""
    return config.state.url.startswith(SCHEMES)


def password(environ: Mapping[str, str]) -> Secret | None:
    """The database password from the environment, if given there."""
    value = read_variable(environ, PASSWORD)
    return Secret(value) if value is not None else None


def where(config: Config) -> str:
    """``host:port/db``: the journal's database, for messages."""
    return database(config.state.url)


def database(url: str) -> str:
    """``host:port/db`` of a postgresql:// URL (never the user, the password or any option)."""
    return f"{server(url)}{urlsplit(url).path or '/'}"


def password_source(url: str, environ: Mapping[str, str], key: str = "state.url") -> str:
    """Where the password libpq sent for ``url`` (at ``key``) came from, named as given (libpq's order)."""
    if PASSWORD in environ or f"{PASSWORD}_FILE" in environ:
        return given_as(environ, PASSWORD)
    if "PGPASSWORD" in os.environ:  # libpq reads its own variables from the process itself
        return "PGPASSWORD"
    if conninfo_to_dict(url).get("passfile"):
        return key  # the URL's passfile option
    if "PGPASSFILE" in os.environ:
        return "PGPASSFILE"
    return str(Path.home() / ".pgpass")


@contextmanager
def signing_in(url: str, environ: Mapping[str, str], key: str = "state.url") -> Iterator[None]:
    """A refused sign-in as a usage error on the password's source, or on ``key`` for the account."""
    try:
        yield
    except SignInRefusedError as error:
        if not error.password:
            raise ConfigError(key, error.problem) from None
        if "no password supplied" in error.problem:  # libpq had none to send: nothing was given
            problem = f"is not set (nor {PASSWORD}_FILE, nor a passfile entry for it); {error.problem}"
            raise ConfigError(PASSWORD, problem) from None
        raise ConfigError(password_source(url, environ, key), error.problem) from None


def open_postgres(config: Config, environ: Mapping[str, str]) -> Journal:
    """The journal in the database, its schema created or migrated first: for the commands that write."""
    with signing_in(config.state.url, environ):
        return PostgresJournal(config.state.url, password=password(environ))


def require_postgres(config: Config, environ: Mapping[str, str]) -> None:
    """A usage error if the database holds no journal yet (nothing is created to find out)."""
    with signing_in(config.state.url, environ):
        found = has_journal(config.state.url, password=password(environ))
    if not found:
        problem = (
            f"no journal in the database at {where(config)}"
            " (nothing has run yet; `rotator run-once` creates it)"
        )
        raise ConfigError("state.url", problem)


def read_postgres(config: Config, environ: Mapping[str, str], *, missing_ok: bool) -> Journal:
    """The journal read-only (its connections cannot write); an empty one if ``missing_ok`` and none yet."""
    secret = password(environ)
    with signing_in(config.state.url, environ):
        if not has_journal(config.state.url, password=secret):
            if missing_ok:
                return MemoryJournal()
            require_postgres(config, environ)
        return PostgresJournal(config.state.url, password=secret, read_only=True)
