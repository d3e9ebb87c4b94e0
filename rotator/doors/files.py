"""Reading the small text files rotator is pointed at: the config and ``*_FILE`` secrets. Core module.

An operator's path may name anything: ``/dev/zero`` (endless bytes), a FIFO (a read that never
returns), a directory, a multi-gigabyte log. :func:`read_text_file` reads only a regular file
(symlinks are followed: Kubernetes mounts secrets as symlinks), and at most ``limit`` bytes of it,
so each of those is one :class:`ConfigError` naming the key, not a hang or a ``MemoryError``.
"""

import os
import stat

from rotator.core.errors import ConfigError


KIB = 1024
#: A token, a client secret or a webhook URL is well under a kilobyte.
SECRET_FILE_LIMIT = 64 * KIB
#: About 9,000 targets: a 1,000-target config is near 110 KiB.
CONFIG_FILE_LIMIT = 1024 * KIB
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def size_text(size: int) -> str:
    """``64 KiB``, ``1 MiB``: a limit as people read it."""
    for unit, scale in (("MiB", KIB * KIB), ("KiB", KIB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def read_text_file(path: str, *, key: str, limit: int, what: str) -> str:
    """The UTF-8 text of the regular file at ``path``, at most ``limit`` bytes of it.

    Every refusal is a :class:`ConfigError` on ``key`` (the variable or ``--config``) that names
    ``path`` and, for a file too big, ``limit`` and ``what`` the file is ("a secret file").
    """
    # O_NONBLOCK: opening a FIFO for reading blocks until a writer comes, possibly never; with it
    # the open returns at once and fstat says FIFO. Regular files ignore the flag.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise ConfigError(key, f"{path}: no such file") from None
    except OSError as error:
        raise ConfigError(key, f"{path}: {error.strerror}") from None
    except ValueError:  # a NUL in the path
        raise ConfigError(key, f"{path!r}: not a valid path") from None
    try:
        data = _read_regular(descriptor, path, key=key, limit=limit, what=what)
    finally:
        os.close(descriptor)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(key, f"{path}: not UTF-8 text") from None


def _read_regular(descriptor: int, path: str, *, key: str, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes from ``descriptor``, which must be a regular file."""
    status = os.fstat(descriptor)  # of what was opened: no window for a swap after a check
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _KINDS if test(status.st_mode)), "something else")
        raise ConfigError(key, f"{path}: is {kind}, not a regular file")
    too_big = f"{path}: is larger than {size_text(limit)}, the most rotator reads from {what}"
    if status.st_size > limit:
        raise ConfigError(key, too_big)
    # st_size is a hint (a file may grow, /proc reports 0): read at most limit + 1 bytes to know.
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        try:
            chunk = os.read(descriptor, left)
        except OSError as error:
            raise ConfigError(key, f"{path}: {error.strerror}") from None
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    if left <= 0:
        raise ConfigError(key, too_big)
    return b"".join(chunks)
