"""The journal's file on disk: what is refused before SQLite opens it, how it is created, when to warn.

A journal is rotator's alone: created 0600 in folders made 0700, never a symlink itself (whoever
can change a link could send rotator's records elsewhere; a symlinked folder on the path is the
operator's mount, and fine), and never a file SQLite would take for an empty database while it
holds something else. These checks run before SQLite touches
the file, so a refused file is left exactly as it was.
"""

import os
import shlex
import stat

from pathlib import Path

from rotator.core.errors import ConfigError


#: The first bytes of every SQLite 3 database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def refuse_unfit(path: Path) -> None:
    """A ConfigError for what must not be opened as a journal: a symlink, a non-SQLite or non-regular file.

    A link would let whoever can change it send rotator's records (and reads) to another file.
    """
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there: a new journal (or, under a file, a "cannot create" error)
    except OSError as error:
        raise ConfigError("state.url", f"cannot read the journal {path}: {error.strerror}") from None
    if stat.S_ISLNK(mode):
        problem = f"{path} is a symlink to {path.readlink()}; refusing it: point state.url at the file itself"
        raise ConfigError("state.url", problem)
    if not stat.S_ISREG(mode):
        raise ConfigError("state.url", f"{path} is not a rotator journal (not a regular file)")
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_HEADER))
    except OSError as error:
        raise ConfigError("state.url", f"cannot read the journal {path}: {error.strerror}") from None
    # Checked here, not left to SQLite: it takes a file of a byte or two for an empty database,
    # and the first write would then replace whatever it held.
    if head and head != _SQLITE_HEADER:
        raise ConfigError("state.url", f"{path} is not a rotator journal (not an SQLite database)")


def create(path: Path) -> None:
    """Create the missing folders (0700) and the file (0600) ourselves: neither is ever open to others."""
    try:
        for folder in reversed((path.parent, *path.parent.parents)):
            if not folder.exists():
                folder.mkdir(mode=0o700, exist_ok=True)
        # O_NOFOLLOW: a symlink planted since the check above is refused, not followed.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600))
    except OSError as error:
        # The likeliest first mistake in a container: a relative sqlite:/// path resolves
        # against the (read-only) config folder.
        problem = f"cannot create the journal {path}: {error.strerror}"
        hint = "; use an absolute path on a writable volume, e.g. sqlite:////var/lib/rotator/state.db"
        raise ConfigError("state.url", problem + hint) from None


def loose_files(path: Path) -> list[tuple[Path, int]]:
    """The journal's files (itself, its WAL and shared-memory files) open to group or others, with modes."""
    loose = []
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(file.lstat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            loose.append((file, mode))
    return loose


def loose_permissions(path: Path) -> ConfigError | None:
    """A warning (not fatal) if the journal or its WAL files are open to group or others, with the fix."""
    loose = loose_files(path)
    if not loose:
        return None
    modes = ", ".join(f"{file.name} {mode:04o}" for file, mode in loose)
    problem = (
        f"the journal is readable or writable by group or others ({modes});"
        f" run: chmod 600 {' '.join(shlex.quote(str(file)) for file, _ in loose)}"
    )
    return ConfigError("state.url", problem)
