"""The machine's PostgreSQL for tests: freshly created databases and schemas, dropped afterwards.

The server is ``ROTATOR_TEST_POSTGRES`` (an admin URL; default the local one on 127.0.0.1:5432,
trust auth, database ``test``). An unreachable server fails the tests that need it: CI has one,
and a skipped test would hide a store nobody checked.

Creating a database costs about 0.2 s (a copy of ``template1``), a schema about 0.05 s, so the
journal contract suite, which needs a fresh store per test, gets a fresh *schema* in one database
per test process (created on first use, dropped when the process ends); the CLI tests, few and
end to end, get a fresh database each.
"""

import atexit
import contextlib
import os
import secrets
import socket
import struct
import threading
import time

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg


ADMIN = os.environ.get("ROTATOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_shared: list[str] = []
_shared_lock = threading.Lock()


def url_of(database: str) -> str:
    """The admin URL pointed at ``database``."""
    parts = urlsplit(ADMIN)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _create() -> str:
    name = f"rotator_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE DATABASE {name}".encode())
    return name


def _drop(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new empty database (``rotator_test_<random>``), its URL yielded, dropped (with force) after."""
    name = _create()
    try:
        yield url_of(name)
    finally:
        _drop(name)


def end_sessions(admin: psycopg.Connection[Any], database: str) -> int:
    """End every other session of ``database``, as a restart or a failover does; how many were ended.

    ``pg_terminate_backend`` only signals: return once the server no longer lists them, so the
    sockets of the pool's connections have their end to read (about 1 s at most).
    """
    others = b" FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    ended = admin.execute(b"SELECT count(pg_terminate_backend(pid))" + others, (database,)).fetchone()
    for _ in range(100):
        left = admin.execute(b"SELECT count(*)" + others, (database,)).fetchone()
        if left == (0,):
            break
        time.sleep(0.01)
    return ended[0] if ended else 0


def _shared_database() -> str:
    """This process's database for schemas, created on first use and dropped at exit."""
    with _shared_lock:
        if not _shared:
            _shared.append(_create())
            atexit.register(_drop, _shared[0])
        return url_of(_shared[0])


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A new empty schema, yielded as a URL whose connections use it alone; dropped after."""
    database = _shared_database()
    name = f"s_{secrets.token_hex(6)}"
    with psycopg.connect(database, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {name}".encode())
    try:
        yield f"{database}?options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(database, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE".encode())


# A server that refuses to sign in -----------------------------------------------------------------
# The machine's PostgreSQL trusts every local connection, so it never refuses a password. This
# speaks just enough of the protocol (v3) to: decline TLS and GSS encryption, ask for a
# cleartext password (when ``ask`` is set) and read it, then answer with a FATAL ErrorResponse
# carrying ``sqlstate`` and ``message``, as PostgreSQL does for a bad password or pg_hba refusal.

_ENCRYPTION_REQUESTS = frozenset({80877103, 80877104})  # SSLRequest, GSSENCRequest


def _exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return data


def _refuse(conn: socket.socket, sqlstate: str, message: str, *, ask: bool, passwords: list[str]) -> None:
    while True:  # the startup packet, after any encryption request (declined: "N")
        (size,) = struct.unpack("!I", _exactly(conn, 4))
        body = _exactly(conn, size - 4)
        if struct.unpack("!I", body[:4])[0] not in _ENCRYPTION_REQUESTS:
            break
        conn.sendall(b"N")
    if ask:
        conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        _exactly(conn, 1)
        (size,) = struct.unpack("!I", _exactly(conn, 4))
        passwords.append(_exactly(conn, size - 4).rstrip(b"\0").decode())
    fields = (("S", "FATAL"), ("V", "FATAL"), ("C", sqlstate), ("M", message))
    body = b"".join(code.encode() + text.encode() + b"\0" for code, text in fields) + b"\0"
    conn.sendall(b"E" + struct.pack("!I", len(body) + 4) + body)


@contextmanager
def refusing_server(sqlstate: str, message: str, *, ask: bool = True) -> Iterator[tuple[int, list[str]]]:
    """A loopback "PostgreSQL" refusing every sign-in; yields its port and the passwords it was sent."""
    passwords: list[str] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                _refuse(conn, sqlstate, message, ask=ask, passwords=passwords)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], passwords
    finally:
        stop.set()
        thread.join()
        listener.close()
