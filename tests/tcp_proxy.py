"""A loopback TCP proxy whose link can be cut and restored: a database outage for a real process.

``TcpProxy(port)`` forwards 127.0.0.1:``proxy.port`` to 127.0.0.1:``port``.  ``cut()`` closes every
forwarded connection and refuses new ones (they are accepted and closed at once, as a database that
went away mid-query looks to its client); ``hang()`` makes it a database that accepts and never
answers (new connections are held open in silence, bytes on forwarded ones are no longer passed
on); ``restore()`` forwards again.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._up = threading.Event()
        self._up.set()
        self._hung = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._hung.is_set():
                with self._lock:
                    self._open.append(client)  # accepted, never answered
                continue
            if not self._up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                self._flowing.wait()  # held while hung: a hung server never answers
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._up.clear()
        with self._lock:
            conns, self._open = self._open, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
                s.close()

    def hang(self) -> None:
        self._hung.set()
        self._flowing.clear()

    def restore(self) -> None:
        self._hung.clear()
        self._flowing.set()
        self._up.set()

    def close(self) -> None:
        self.cut()
        self._listener.close()
