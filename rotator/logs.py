"""structlog set up for rotator: JSON off a terminal, readable on one, and a last-line scrubber.

The scrubber is the final processor before rendering: whatever an event carries, any live token
value registered with :func:`watch` and anything :mod:`rotator.redact` recognises (GitLab tokens,
JWTs, a URL's ``user:password@``) is replaced by ``[REDACTED]``, and control characters are shown
escaped (:func:`rotator.redact.printable`): an upstream's message holding a newline or an ANSI
escape cannot forge a log line or recolour a terminal, in JSON (read with ``jq -r``) or on a
terminal. Tracebacks are rendered without local variables, so a token held in a frame never
reaches the log.
"""

import logging
import sys
import threading

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

from structlog.tracebacks import ExceptionDictTransformer

from rotator.redact import MARKER, redact, redact_tree
from rotator.secret import Secret


REDACTED = MARKER
_live: set[str] = set()
_live_lock = threading.Lock()


@contextmanager
def watch(secret: Secret) -> Iterator[None]:
    """While inside, the scrubber also removes this exact value (whatever its shape) from events."""
    value = secret.reveal()
    with _live_lock:
        _live.add(value)
    try:
        yield
    finally:
        with _live_lock:
            _live.discard(value)


def scrub_text(text: str) -> str:
    """``text`` with live values and token-shaped strings replaced by ``[REDACTED]``, controls escaped."""
    with _live_lock:
        live = list(_live)
    return redact(text, live)


def scrub(_logger: object, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor, the last one before the renderer."""
    with _live_lock:
        live = tuple(_live)
    return {key: redact_tree(value, live) for key, value in event.items()}


class _Bridge(logging.Handler):
    """Standard-library log records as structlog events (message text only, never exc_info)."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else "warning"
        getattr(structlog.get_logger(record.name), level)("library.log", message=record.getMessage())


def configure(*, stream: TextIO | None = None, json: bool | None = None, level: int = logging.INFO) -> None:
    """Send structlog events to ``stream`` (stderr): JSON unless it is a terminal."""
    stream = stream or sys.stderr
    as_json = not stream.isatty() if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    # httpx logs each request's full URL at INFO; a webhook URL is a credential. Warnings only.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # APScheduler and uvicorn log through the standard library: their warnings join our stream
    # as structlog events (scrubbed like ours), not as stray plain-text lines.
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _Bridge)]
    root.addHandler(_Bridge(logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # structlog's dict tracebacks show locals by default: a token in a frame would leak.
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
            if as_json
            else structlog.processors.format_exc_info,
            scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
