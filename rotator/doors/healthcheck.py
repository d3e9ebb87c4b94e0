"""``rotator healthcheck``: is the daemon on ``daemon.listen`` answering ``/healthz``? For the image.

The image's ``HEALTHCHECK`` runs this instead of probing a fixed address, so a config that moves
``daemon.listen`` moves the probe too. It reads ``daemon.listen`` and nothing else: no secret, no
journal, no other section validated (a daemon that started has a valid config; this only has to
find its port). A wildcard host (``0.0.0.0``, ``::``) is probed on loopback of the same family.

Exit codes: 0 healthy (``/healthz`` answered 200), 1 anything else, a config it cannot read
included. Never 2, unlike the other commands: Docker reserves 2 in a health check.
"""

import http.client
import sys

from collections.abc import Mapping
from pathlib import Path

from rotator.core.errors import ConfigError
from rotator.doors.config_yaml import load_yaml
from rotator.doors.files import CONFIG_FILE_LIMIT, read_text_file
from rotator.doors.outcome import Outcome


#: Seconds to connect and to wait for the answer: well inside the image's HEALTHCHECK --timeout=5s.
TIMEOUT = 3.0
#: ``daemon.listen``'s default (:class:`rotator.doors.config.DaemonSettings`, not imported: pydantic
#: would double this command's start-up, paid every 30 seconds).
DEFAULT_LISTEN = "0.0.0.0:8080"
#: As rotator.doors.wiring.CONFIG_VARIABLE (that module would import every adapter).
_CONFIG_VARIABLE = "ROTATOR_CONFIG"
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - names, not binds
_MAX_PORT = 65535


def run(before: str | None, after: str | None, environ: Mapping[str, str]) -> Outcome:
    """Probe the daemon the config (``--config`` before or after the command, else ROTATOR_CONFIG) names."""
    try:
        host, port = address(_config(before, after, environ))
    except ConfigError as error:
        _say(str(error))
        return Outcome.UNHEALTHY
    status = probe(host, port)
    if status == http.client.OK:
        return Outcome.OK
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    _say(f"http://{shown}/healthz: {status}")
    return Outcome.UNHEALTHY


def _say(problem: str) -> None:
    # stderr, one line: Docker keeps the last few in `docker inspect`'s .State.Health.Log.
    print(f"rotator healthcheck: {problem}", file=sys.stderr)  # noqa: T201 - the command's one output


def _config(before: str | None, after: str | None, environ: Mapping[str, str]) -> object:
    if before is not None and after is not None:
        raise ConfigError("--config", "given both before and after the command; give it once")
    path = after or before or environ.get(_CONFIG_VARIABLE)
    if not path:
        raise ConfigError("--config", f"no configuration: pass --config PATH or set {_CONFIG_VARIABLE}")
    text = read_text_file(path, key="--config", limit=CONFIG_FILE_LIMIT, what="a config file")
    return load_yaml(text, Path(path))


def address(document: object) -> tuple[str, int]:
    """The (host, port) to probe for the config ``document``: ``daemon.listen``, wildcards on loopback."""
    daemon = document.get("daemon") if isinstance(document, dict) else None
    listen = daemon.get("listen", DEFAULT_LISTEN) if isinstance(daemon, dict) else DEFAULT_LISTEN
    host, _, port = str(listen).rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not port.isdigit() or not 0 < int(port) <= _MAX_PORT:
        # Port 0 is valid for the daemon (any free port) but leaves nothing to probe.
        raise ConfigError("daemon.listen", f"{listen!r} names no port to probe; expected HOST:PORT")
    return _LOOPBACK.get(host, host), int(port)


def probe(host: str, port: int, timeout: float = TIMEOUT) -> int | str:
    """``GET /healthz``'s status code, or why there was none.

    http.client rather than urllib or httpx: neither proxies (an ``HTTPS_PROXY`` set for the
    upstreams would carry the probe away) nor redirects apply to a probe of our own port.
    """
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__
    except http.client.HTTPException as error:
        return type(error).__name__
    finally:
        connection.close()
