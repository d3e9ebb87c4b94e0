"""The global options: ``--config``, ``--log-format``, ``--log-level`` and ``-v``.

Each is accepted before the command and, on the commands that read the config, after it too
(``rotator check --config x.yaml`` is the commonest way to write it). A value option given in both
places is a usage error: rotator will not guess which the operator meant. ``-v`` adds up.
``ROTATOR_LOG_FORMAT`` and ``ROTATOR_LOG_LEVEL`` stand in for the log options; an option wins over
its variable; a bad value in either is a usage error naming it (exit 2).
"""

import argparse
import logging

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from rotator.core.errors import ConfigError


if TYPE_CHECKING:
    from rotator.adapters.logs import LogOptions


CONFIG_VARIABLE = "ROTATOR_CONFIG"
LOG_FORMAT = "ROTATOR_LOG_FORMAT"
LOG_LEVEL = "ROTATOR_LOG_LEVEL"
FORMATS = ("json", "console")
LEVELS: Mapping[str, int] = MappingProxyType(
    {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
)
#: The dest suffix of an option given after the command.
_AFTER = "_after"


def add(parser: argparse.ArgumentParser, *, after: bool, logs: bool = True) -> None:
    """Add the global options to ``parser``: the top-level one, or a command's (``after``).

    ``logs``: with the log options (a command that logs nothing is not offered them after it).
    """
    suffix = _AFTER if after else ""
    where = ", also accepted before the command" if after else ""
    config = parser.add_argument(
        "--config",
        dest=f"config{suffix}",
        metavar="PATH",
        help=f"the YAML configuration{where} (default: ${CONFIG_VARIABLE}; there is no default path)",
    )
    # shtab reads this attribute to complete a file name here (it ignores actions without it).
    config.complete = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}  # type: ignore[attr-defined]
    if not logs:
        return
    parser.add_argument(
        "--log-format",
        dest=f"log_format{suffix}",
        choices=FORMATS,
        help=f"log lines on stderr as JSON or for a person (default: ${LOG_FORMAT}; else json, or"
        " console on a terminal)",
    )
    parser.add_argument(
        "--log-level",
        dest=f"log_level{suffix}",
        choices=tuple(LEVELS),
        help=f"the least severe log line shown (default: ${LOG_LEVEL}; else info, or warning on a terminal)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        dest=f"verbose{suffix}",
        action="count",
        default=0,
        help="on a terminal, more log lines: -v info, -vv debug (--log-level wins)",
    )


def _once(args: argparse.Namespace, dest: str, option: str) -> str | None:
    before: str | None = getattr(args, dest)
    after: str | None = getattr(args, dest + _AFTER, None)
    if before is not None and after is not None:
        raise ConfigError(option, "given both before and after the command; give it once")
    return after if after is not None else before


def config_path(args: argparse.Namespace) -> str | None:
    """``--config`` given before or after the command; ``None`` if neither (the caller tries the variable)."""
    return _once(args, "config", "--config")


def _variable(environ: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    chosen = value.strip().lower()
    if chosen not in allowed:
        shown = value if len(value) <= 20 else value[:20] + "..."  # noqa: PLR2004 - enough to recognise it
        raise ConfigError(name, f"must be one of {', '.join(allowed)}, not {shown!r}")
    return chosen


def log_options(args: argparse.Namespace, environ: Mapping[str, str]) -> "LogOptions":
    """The log options asked for: ``--log-level``, then ``-v``, then the variable; else the stream decides."""
    from rotator.adapters.logs import LogOptions  # noqa: PLC0415 - structlog only for a command that logs

    # Both variables are checked whatever the options say: a bad value is an error, not a latent one.
    form_variable = _variable(environ, LOG_FORMAT, FORMATS)
    level_variable = _variable(environ, LOG_LEVEL, tuple(LEVELS))
    form = _once(args, "log_format", "--log-format") or form_variable
    verbosity = int(args.verbose) + int(getattr(args, "verbose" + _AFTER, 0))
    level = _once(args, "log_level", "--log-level") or (level_variable if not verbosity else None)
    return LogOptions(
        json=None if form is None else form == "json",
        level=None if level is None else LEVELS[level],
        verbosity=verbosity,
    )
