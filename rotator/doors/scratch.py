"""Where scratch files go: ``TMPDIR``, checked before a command that opens the journal or runs the demo.

Python's :mod:`tempfile` and SQLite both fall back without a word when ``TMPDIR`` is not writable:
Python to ``/var/tmp``, ``/usr/tmp`` and at last the working directory, SQLite to the working
directory too. In the container image the root filesystem is read-only and the working directory
is the state volume, so a forgotten ``--tmpfs /tmp`` (an emptyDir in Kubernetes) would put scratch
files beside the journal, where they outlive a restart and mix with what is backed up. rotator
refuses to start instead, naming ``TMPDIR`` and the fix (exit 2, like any environment mistake).
"""

import tempfile

from collections.abc import Mapping
from pathlib import Path

from rotator.core.errors import ConfigError


KEY = "TMPDIR"
FIX = "mount a writable folder there (docker run --tmpfs /tmp; an emptyDir at /tmp in Kubernetes)"


def check(environ: Mapping[str, str], state_dir: Path | None) -> None:
    """Raise :class:`ConfigError` on ``TMPDIR`` unless scratch files can go there, outside ``state_dir``.

    ``TMPDIR`` unset: the folder Python would pick (it is then writable by construction, and is
    checked against ``state_dir`` only). ``state_dir`` is the journal's folder, ``None`` for none.
    """
    named = environ.get(KEY)
    folder = Path(named) if named else Path(tempfile.gettempdir())
    try:
        # A real file, not os.access: that misses a read-only mount on some systems and ACLs.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ConfigError(KEY, f"{folder}: cannot write a scratch file ({error.strerror}); {FIX}") from None
    if state_dir is not None:
        scratch, state = folder.resolve(), state_dir.resolve()
        if scratch.is_relative_to(state):
            raise ConfigError(
                KEY,
                f"{folder} is inside the state folder {state_dir}: scratch files would sit beside the "
                "journal; point TMPDIR at another folder",
            )
