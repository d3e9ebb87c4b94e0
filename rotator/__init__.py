"""rotator keeps GitLab project access tokens fresh inside Infisical, without lockouts or leaks.

The package exports nothing at the top level but ``__version__``; the entry point is the
``rotator`` command (:mod:`rotator.doors.cli`), and the stand-in servers live in :mod:`rotator.testing`.
"""

from typing import Any


def __getattr__(name: str) -> Any:  # noqa: ANN401 - module __getattr__ returns whatever is asked for
    # Lazy, so that importing the package does not pay for importlib.metadata (the CronJob start-up
    # cost matters; see bench/).
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - deliberately lazy, see above

        return version("rotator")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
