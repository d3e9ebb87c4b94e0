"""``rotator state copy --from URL --to URL``: move the journal from one store into another, verified.

The URLs are written as ``state.url`` is, except that a relative ``sqlite:///PATH`` is relative to
the current folder (there is no config file here). The source is opened read-only and never
created; the destination is created if missing and must hold nothing, and holds nothing again
after a copy that fails (its write is one transaction, checked before it commits). The copy
itself, its refusals and its check are :func:`rotator.journal.snapshot.copy`'s; this door opens the stores,
names the option at fault (exit 2), and prints one line per table: counts, never a record.
"""

import sys

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from rotator.core.errors import ConfigError, SignInRefusedError
from rotator.doors.config import StateSettings
from rotator.doors.outcome import Outcome
from rotator.doors.state import database, password, signing_in
from rotator.journal.postgres import PostgresJournal, has_journal
from rotator.journal.snapshot import TABLES, CopyRefusedError, NotEmptyError, copy, counts
from rotator.journal.sqlite import SQLiteJournal, sqlite_path


SQLITE = "sqlite:///"
POSTGRES = ("postgresql://", "postgres://")
_FORMS = "sqlite:///PATH (relative to the current folder), sqlite:////ABSOLUTE/PATH or postgresql://USER@HOST:PORT/DB"


def _where(url: str) -> str:
    """A PostgreSQL URL as messages name it: ``postgresql://host:port/db``."""
    return f"postgresql://{database(url)}"


def _postgres(url: str, option: str, environ: Mapping[str, str], *, read_only: bool) -> PostgresJournal:
    """The PostgreSQL journal ``url`` names, checked as ``state.url`` is (no password in it)."""
    try:
        StateSettings(url=url)
    except ValidationError as error:
        problem = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(option, problem) from None
    secret = password(environ)
    with signing_in(url, environ, option):
        if read_only and not has_journal(url, password=secret):
            raise ConfigError(option, f"no journal in the database at {_where(url)}")
        try:
            return PostgresJournal(url, password=secret, read_only=read_only)
        except SignInRefusedError:
            raise
        except ConfigError as error:
            raise ConfigError(option, error.problem) from None


def _path(url: str, option: str) -> Path:
    """The SQLite file a URL names; a usage error on ``option`` for any URL this version cannot open."""
    if not url.startswith(SQLITE):
        raise ConfigError(option, f"must be {_FORMS}")
    try:
        return sqlite_path(url, Path.cwd())
    except ConfigError as error:
        raise ConfigError(option, error.problem) from None


def _exists(path: Path) -> bool:
    return path.is_symlink() or path.exists()  # a dangling link is there (and refused when opened)


def _open(path: Path, option: str, *, read_only: bool) -> SQLiteJournal:
    """The journal at ``path``, with its refusals (not a journal, a symlink, damaged) put on ``option``."""
    try:
        return SQLiteJournal(path, read_only=read_only)
    except ConfigError as error:
        raise ConfigError(option, error.problem) from None


def _remove(path: Path) -> None:
    """Remove an SQLite file this command created and left empty, with its WAL files."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        file.unlink(missing_ok=True)


def run(
    source_url: str, destination_url: str, environ: Mapping[str, str], out: TextIO | None = None
) -> Outcome:
    """Copy, verify, and print the rows per table; REFUSED (exit 1) with the reason on stderr.

    ``environ`` gives a PostgreSQL journal's password (``ROTATOR_STATE_PASSWORD``, for both ends).
    """
    out = out or sys.stdout  # read at call time: the tests swap sys.stdout per command
    source_pg, destination_pg = source_url.startswith(POSTGRES), destination_url.startswith(POSTGRES)
    source_path = None if source_pg else _path(source_url, "--from")
    destination_path = None if destination_pg else _path(destination_url, "--to")
    if source_path is not None and not _exists(source_path):
        raise ConfigError("--from", f"no journal at {source_path}")
    same_database = source_pg and destination_pg and _where(source_url) == _where(destination_url)
    same_file = (
        source_path is not None
        and destination_path is not None
        and _exists(destination_path)
        and destination_path.resolve() == source_path.resolve()
    )
    if same_database or same_file:
        raise ConfigError("--to", "is the journal --from names; copy into a new file or an empty database")
    created = destination_path is not None and not _exists(destination_path)
    source: SQLiteJournal | PostgresJournal = (
        _postgres(source_url, "--from", environ, read_only=True)
        if source_path is None
        else _open(source_path, "--from", read_only=True)
    )
    source_name = _where(source_url) if source_path is None else str(source_path)
    destination_name = _where(destination_url) if destination_path is None else str(destination_path)
    try:
        destination: SQLiteJournal | PostgresJournal = (
            _postgres(destination_url, "--to", environ, read_only=False)
            if destination_path is None
            else _open(destination_path, "--to", read_only=False)
        )
        try:
            copied = copy(source, destination, datetime.now(UTC))
        except NotEmptyError as error:
            problem = f"{destination_name}: {error}; copy into a new file or an empty database"
            raise ConfigError("--to", problem) from None
        except CopyRefusedError as error:
            print(f"rotator: state copy refused: {error}", file=sys.stderr)  # noqa: T201 - the reason, for the operator
            # Refused before writing, or after with the write undone (snapshot.copy checks before
            # it commits): the destination holds nothing, and a file this command created would
            # only be in the way.
            unused = created and not any(counts(destination.snapshot()).values())
            destination.close()
            if unused and destination_path is not None:
                _remove(destination_path)
            return Outcome.REFUSED
        finally:
            destination.close()  # again after a refusal: closing twice is harmless
    finally:
        source.close()
    width = max(len(table) for table in TABLES)
    for table in TABLES:
        print(f"{table:<{width}}  {copied[table]:>8}", file=out)
    print(
        f"ok: {sum(copied.values())} rows copied from {source_name} to {destination_name};"
        " the destination reads back the same (rows and contents)",
        file=out,
    )
    return Outcome.OK
