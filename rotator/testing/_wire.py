"""A request's head read as ``http.server`` reads it, without the ``email`` package's parser.

``http.server`` hands every header block to ``email.parser``, which is most of the fakes' HTTP
cost per request (about 25 of 30 µs for a client's eight headers). The blocks the product's clients
send are plain ``Name: value`` lines, so :func:`parse_headers` builds the same
:class:`http.client.HTTPMessage` from them directly, and hands anything else (a folded line, a
bare CR, a name ``email`` would not take) to ``email.parser`` as before.
"""

import email.parser
import http.client
import re

from typing import IO


#: http.client's limits, and the exceptions it raises past them.
MAX_LINE = 65536
MAX_HEADERS = 100
_NAME = re.compile(r"[!-9;-~]+")  # what email's header pattern takes before the colon


def read_header_lines(rfile: IO[bytes]) -> list[bytes]:
    """The header lines up to and including the blank one, as ``http.client`` reads them."""
    lines: list[bytes] = []
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")  # noqa: TRY003 - http.client's own words
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            msg = f"got more than {MAX_HEADERS} headers"
            raise http.client.HTTPException(msg)
        if line in {b"\r\n", b"\n", b""}:
            return lines


def parse_headers(
    lines: list[bytes], message_class: type[http.client.HTTPMessage]
) -> tuple[http.client.HTTPMessage, dict[str, str], dict[str, str]]:
    """The message ``http.client.parse_headers`` would make of ``lines``, and its fields by name.

    Names are lower-cased in both dicts: in the first, a repeated name keeps its last value (what
    the fakes' handlers see); in the second, its first (what ``message.get`` answers).
    """
    fields: list[tuple[str, str]] = []
    for raw in lines[:-1]:  # the last line is the blank one (or the end of the stream)
        line = raw.decode("iso-8859-1").removesuffix("\n").removesuffix("\r")
        name, colon, value = line.partition(":")
        if not colon or "\r" in line or not _NAME.fullmatch(name):
            text = b"".join(lines).decode("iso-8859-1")
            message = email.parser.Parser(_class=message_class).parsestr(text)
            return message, *by_name(message.items())
        fields.append((name, value.lstrip(" \t")))
    message = message_class()
    for name, value in fields:
        message.set_raw(name, value)
    return message, *by_name(fields)


def by_name(fields: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """``fields`` by lower-cased name: the last value of each, and the first."""
    last: dict[str, str] = {}
    first: dict[str, str] = {}
    for name, value in fields:
        key = name.lower()
        last[key] = value
        first.setdefault(key, value)
    return last, first
