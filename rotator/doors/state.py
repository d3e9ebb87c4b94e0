"""Where the journal lives when ``state.url`` names a PostgreSQL database, and how rotator signs in.

``postgresql://USER@HOST:PORT/DB`` (or ``postgres://``), libpq's query options (``sslmode`` and the
like) passed through as written. The URL never holds the password (the config refuses one there);
it comes from ``ROTATOR_STATE_PASSWORD`` or ``ROTATOR_STATE_PASSWORD_FILE``, read like every other
secret (:func:`rotator.doors.environment.read_variable`), or else libpq finds it in its passfile
(``~/.pgpass``, ``PGPASSFILE``) by itself.
"""

from collections.abc import Mapping
from urllib.parse import urlsplit

from rotator.core.errors import ConfigError
from rotator.core.ports import Journal
from rotator.core.secret import Secret
from rotator.doors.config import Config
from rotator.doors.environment import STATE_PASSWORD, read_variable
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


def open_postgres(config: Config, environ: Mapping[str, str]) -> Journal:
    """The journal in the database, its schema created or migrated first: for the commands that write."""
    return PostgresJournal(config.state.url, password=password(environ))


def require_postgres(config: Config, environ: Mapping[str, str]) -> None:
    """A usage error if the database holds no journal yet (nothing is created to find out)."""
    if not has_journal(config.state.url, password=password(environ)):
        problem = (
            f"no journal in the database at {where(config)}"
            " (nothing has run yet; `rotator run-once` creates it)"
        )
        raise ConfigError("state.url", problem)


def read_postgres(config: Config, environ: Mapping[str, str], *, missing_ok: bool) -> Journal:
    """The journal read-only (its connections cannot write); an empty one if ``missing_ok`` and none yet."""
    secret = password(environ)
    if not has_journal(config.state.url, password=secret):
        if missing_ok:
            return MemoryJournal()
        require_postgres(config, environ)
    return PostgresJournal(config.state.url, password=secret, read_only=True)
