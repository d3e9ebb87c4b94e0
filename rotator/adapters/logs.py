"""structlog set up for rotator: JSON off a terminal, readable on one, and a last-line scrubber.

What the operator did not choose is decided by the stream (:func:`decide`): off a terminal (a
container, a CronJob, a pipe) JSON lines at info, as a log collector wants them; on a terminal the
console format at warning, so the result lines a command prints on stdout are not drowned by its
progress on stderr (``-v``: info, ``-vv``: debug). An explicit format or level always wins.

The scrubber is the final processor before rendering: whatever an event carries, any live token
value registered with :func:`watch` and anything :mod:`rotator.core.redact` recognises (GitLab tokens,
JWTs, a URL's ``user:password@``) is replaced by ``[REDACTED]``, and control characters are shown
escaped (:func:`rotator.core.redact.printable`): an upstream's message holding a newline or an ANSI
escape cannot forge a log line or recolour a terminal, in JSON (read with ``jq -r``) or on a
terminal. Tracebacks are rendered without local variables, so a token held in a frame never
reaches the log.
"""

import logging
import sys

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from structlog.tracebacks import ExceptionDictTransformer

from rotator.core.redact import MARKER, live_values, redact_tree, scrub_text, watch


REDACTED = MARKER
__all__ = ["REDACTED", "LogOptions", "bridge", "configure", "decide", "scrub", "scrub_text", "watch"]


@dataclass(frozen=True, slots=True)
class LogOptions:
    """What the operator asked for; ``None`` leaves the choice to the stream (:func:`decide`)."""

    json: bool | None = None
    level: int | None = None
    #: How many ``-v`` were given: on a terminal 1 is info, 2 or more debug.
    verbosity: int = 0


def decide(options: LogOptions, *, terminal: bool) -> tuple[bool, int]:
    """``(as_json, level)`` for a stream that is (or is not) a terminal; see the module docstring."""
    as_json = not terminal if options.json is None else options.json
    if options.level is not None:
        return as_json, options.level
    if options.verbosity >= 2:  # noqa: PLR2004 - -vv
        return as_json, logging.DEBUG
    if options.verbosity == 1 or not terminal:
        return as_json, logging.INFO
    return as_json, logging.WARNING


def scrub(_logger: object, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor, the last one before the renderer."""
    live = live_values()
    return {key: redact_tree(value, live) for key, value in event.items()}


class _Bridge(logging.Handler):
    """Standard-library log records (psycopg_pool, APScheduler, uvicorn) as structlog events.

    Only the message text goes, never ``exc_info``, and through the scrubber like every event.
    Before :func:`configure` (``status``, ``history`` and ``state copy`` log nothing of their own,
    yet a journal's pool may warn) the event is rendered by a logger of this handler's own, as
    :func:`configure` would render it, on stderr: never a stray plain-text line on the stream.
    """

    def __init__(self, options: LogOptions) -> None:
        super().__init__(logging.WARNING)
        self.options = options

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else "warning"
        logger = structlog.get_logger(record.name) if structlog.is_configured() else self._unconfigured()
        getattr(logger, level)("library.log", logger=record.name, message=record.getMessage())

    def _unconfigured(self) -> Any:  # noqa: ANN401 - a structlog bound logger
        stream = sys.stderr  # read at call time, as configure() does
        as_json, level = decide(self.options, terminal=stream.isatty())
        return structlog.wrap_logger(
            structlog.PrintLogger(stream),
            processors=_processors(as_json=as_json),
            wrapper_class=structlog.make_filtering_bound_logger(level),
        )


def bridge(options: LogOptions | None = None) -> None:
    """Route the standard library's warnings into structlog (see :class:`_Bridge`), once.

    Called as a command starts, before anything opens a journal, and again by :func:`configure`.
    """
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _Bridge)]
    root.addHandler(_Bridge(options or LogOptions()))


def _processors(*, as_json: bool) -> list[Any]:
    """The processors: context, level, time, exception, the scrubber, then the renderer."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        # A person reads the console: the one time format, to the second (core.durations.stamp);
        # JSON keeps the microseconds a log pipeline orders by.
        structlog.processors.TimeStamper(fmt="iso" if as_json else "%Y-%m-%dT%H:%M:%SZ", utc=True),
        # structlog's dict tracebacks show locals by default: a token in a frame would leak.
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        if as_json
        else structlog.processors.format_exc_info,
        scrub,
        renderer,
    ]


def configure(
    options: LogOptions | None = None,
    *,
    stream: TextIO | None = None,
    json: bool | None = None,
    level: int | None = None,
) -> None:
    """Send structlog events to ``stream`` (stderr) as ``options`` ask; ``json`` and ``level`` win."""
    stream = stream or sys.stderr
    options = options or LogOptions()
    options = LogOptions(
        json=options.json if json is None else json,
        level=options.level if level is None else level,
        verbosity=options.verbosity,
    )
    as_json, level = decide(options, terminal=stream.isatty())
    # httpx logs each request's full URL at INFO; a webhook URL is a credential. Warnings only.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # APScheduler, uvicorn and psycopg_pool log through the standard library: their warnings join
    # our stream as structlog events (scrubbed like ours), not as stray plain-text lines.
    bridge(options)
    structlog.configure(
        processors=_processors(as_json=as_json),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
