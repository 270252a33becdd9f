"""A TCP relay in front of a test server that can be cut: a dependency going away mid-run,
over a real network connection (nothing patched). Once cut, open connections are closed and
new ones are refused, as a lost route or a dead endpoint would refuse them."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.s3_server import free_port


class Relay:
    """Forwards 127.0.0.1:`port` to `target_port` until `cut`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # cut
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            connections, self._open = [self._listener, *self._open], []
        for connection in connections:
            _close(connection)


def _close(connection: socket.socket) -> None:
    """Shut down first: a bare close leaves a thread blocked in accept or recv holding it."""
    with contextlib.suppress(OSError):  # not connected (any more)
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):  # either side closed, or the relay cut
        while data := source.recv(65536):
            sink.sendall(data)
    sink.close()
