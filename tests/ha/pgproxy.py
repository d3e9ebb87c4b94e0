"""A loopback TCP proxy that can cut a replica off its database, and let it back.

While cut, every proxied connection is reset and each new one is accepted and closed at once:
PostgreSQL unreachable as a client sees it (a restart, a network partition), answered in
milliseconds rather than after a timeout, so the test waits on rotator, not on TCP.
"""

import contextlib
import socket
import struct
import threading

from typing import Self


class Proxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; :meth:`cut` and :meth:`restore` it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        """Listen on a free loopback port (started by ``with``)."""
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)

    def __enter__(self) -> Self:
        """Start accepting."""
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop, and close every connection."""
        self._closed.set()
        self._listener.close()
        self._reset_all()
        self._thread.join(5)

    def cut(self) -> None:
        """Reset every connection now; refuse (accept and reset) each new one until :meth:`restore`."""
        self._cut.set()
        self._reset_all()

    def restore(self) -> None:
        """Forward again."""
        self._cut.clear()

    def _reset_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _reset(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _reset(sock)
            with self._lock:
                self._open.difference_update((source, sink))


def _reset(sock: socket.socket) -> None:
    """Close with a RST, so the peer learns at once (the shutdown wakes a thread blocked on it)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
