"""Why an upstream could not be reached, in words a person can act on. Adapter helper.

``cannot reach https://gitlab.example.com:443: connection refused``: the address (scheme, host
and the port, also when it is the scheme's default, since a firewall rule or a NetworkPolicy is
written per port) and the operating system's reason. Both adapters word a failed connect this way,
so ``check`` and a run's failure line read alike.

Only fixed texts are used: the OS's ``strerror`` for an errno or a resolver error code, never an
exception's own message (httpx, h11 and urllib3 may quote a header value, the credential itself).
"""

import socket
import urllib.parse


#: The longest exception chain walked (httpx wraps httpcore wraps OSError; requests wraps
#: urllib3's MaxRetryError wraps NewConnectionError wraps OSError): short, bounded all the same.
_CHAIN = 8
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, the port written out; no userinfo, path or query."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is no number: config validation keeps these out
        port = None
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def cannot_reach(url: str, reason: str) -> str:
    """The one line for a connection that was never made: ``cannot reach URL:PORT: REASON``."""
    return f"cannot reach {origin(url)}: {reason}"


def os_reason(exc: BaseException, *, connect_timeout: float | None = None) -> str | None:
    """The operating system's reason found in ``exc``'s chain, in lower case; ``None`` if there is none.

    A refused connection reads ``connection refused``, a failed name lookup ``DNS lookup failed
    (Name or service not known)``, a connect that timed out ``no connection within 5s`` (when
    ``connect_timeout`` is given), any other socket error its ``strerror`` (``network is
    unreachable``).
    """
    for seen in _chain(exc):
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return f"DNS lookup failed ({seen.strerror or 'no address'})"
        if isinstance(seen, TimeoutError) and connect_timeout is not None:
            return f"no connection within {connect_timeout:g}s"
        if isinstance(seen, OSError) and isinstance(seen.strerror, str) and seen.strerror:
            return seen.strerror[:1].lower() + seen.strerror[1:]
    return None


def in_chain(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` or an exception it wraps is one of ``kinds``."""
    return any(isinstance(seen, kinds) for seen in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: its cause or context, urllib3's ``reason``, requests' first argument."""
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(found) < _CHAIN and seen not in found:
        found.append(seen)
        inner = seen.__cause__ or seen.__context__ or getattr(seen, "reason", None)
        if inner is None and seen.args and isinstance(seen.args[0], BaseException):
            inner = seen.args[0]
        seen = inner if isinstance(inner, BaseException) else None
    return found
