"""Serving: our gevent WebSocket handler, a pywsgi server factory and a gunicorn worker.

:class:`Handler` is gevent-websocket's handler with two changes:

- TCP_NODELAY: gevent's pywsgi writes a response's headers and body
  separately; on a keep-alive connection Nagle's algorithm plus the client's
  delayed ACK then add ~40 ms to every request.
- Size limits (:mod:`wsgisession.websocket`): a websocket message over the served
  app's ``max_message_size`` is refused from its frame header (close code
  1009), and a request body to the Socket.IO endpoint over it gets 413 from its
  ``Content-Length`` (a chunked body is counted while read and cut off), before
  the bytes are read, so other greenlets are not stalled.

``wsgisession serve`` uses :func:`make_server`; for gunicorn::

    gunicorn --paste conf/counter.ini -k wsgisession.server.Worker

Both turn off gevent's record of where each greenlet was spawned
(:func:`untrack_spawns`), unless ``GEVENT_TRACK_GREENLET_TREE`` is set, and
once the app is loaded take it out of the garbage collector's full passes
(:func:`freeze_loaded_heap`).
"""
from __future__ import annotations

import gc
import io
import os
import socket
import sys
import time
import weakref
from typing import Any

import gevent

from gevent.pywsgi import Input, WSGIServer
from geventwebsocket.gunicorn.workers import GeventWebSocketWorker
from gunicorn.workers.ggevent import PyWSGIServer
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import Stream

from .websocket import LimitedWebSocket, client_of, message_limit, retire, security_log, socketio_prefix


#: gevent's own environment variable for its ``track_greenlet_tree`` setting
TRACK_GREENLET_TREE = "GEVENT_TRACK_GREENLET_TREE"


def untrack_spawns() -> bool:
    """Turn off gevent's ``track_greenlet_tree`` for this process, unless its environment variable is set.

    Speed: python-socketio spawns a greenlet per event, and gevent by default
    copies the spawner's last 10 frames (with their line numbers) into each new
    greenlet. Without that, an acked echo event cost 281k server instructions
    instead of 335k, a session read-modify-write on the SQLite store 411k instead
    of 459k (callgrind, 50 sockets, 2026-12-03). What is lost is debugging
    information: a greenlet's ``spawning_stack``, ``spawning_greenlet`` and
    ``spawn_tree_locals``, which ``gevent.util.format_run_info()`` prints.
    ``GEVENT_TRACK_GREENLET_TREE=1`` keeps them (gevent's own variable: ``=0`` turns them
    off in any gevent process). Returns whether greenlets are tracked now.
    """
    if TRACK_GREENLET_TREE not in os.environ:
        gevent.config.track_greenlet_tree = False
    return bool(gevent.config.track_greenlet_tree)


def freeze_loaded_heap() -> int:
    """Once the app is loaded: collect, then move every object to the garbage collector's permanent generation.

    Speed: the modules, classes and functions of a loaded app (tens of thousands of
    objects) never become garbage, yet every full collection of the cyclic garbage
    collector walked them all: 37 ms of 20,000 socket events' 1.43 s, 0.3 ms once
    frozen (50 greenlets in process, SQLite store, 2026-12-03). Frozen objects are
    still freed when nothing refers to them; only a reference cycle among them would
    stay. Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _nodelay(sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not TCP (a Unix socket)
        pass


class Handler(WebSocketHandler):  # type: ignore[misc]
    """gevent-websocket's handler, without Nagle delays, with size limits."""

    def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
        _nodelay(sock)
        super().__init__(sock, address, server, rfile)

    def upgrade_connection(self) -> Any:
        """Upgrade as gevent-websocket does, then swap in a :class:`LimitedWebSocket`."""
        result = super().upgrade_connection()
        _upgraded.add(self)
        stock = self.environ.get("wsgi.websocket")
        if stock is not None and not isinstance(stock, LimitedWebSocket):
            websocket = LimitedWebSocket(self.environ, Stream(self), self, max_size=message_limit(self.application))
            retire(stock)
            self.websocket = websocket
            self.environ["wsgi.websocket"] = websocket
        return result

    def read_requestline(self) -> str:
        """Wait for the next request; a stopping server's idle keep-alive connections end here."""
        if self.server.closed:
            return ""
        _idle.add(self)
        try:
            return str(super().read_requestline())
        finally:
            _idle.discard(self)

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if self.server.closed and self.environ.get("wsgi.websocket") is None:
            # stopping: this response is the connection's last; the client's next request goes elsewhere
            headers = [h for h in headers if h[0].lower() != "connection"] + [("Connection", "close")]
        return super().start_response(status, headers, exc_info)

    def run_application(self) -> None:
        path = self.environ.get("PATH_INFO") or ""
        if path.startswith(socketio_prefix(self.application)):
            limit = message_limit(self.application)
            size = self._oversized_body(limit)
            if size is not None:
                self._refuse_body(size, limit)
                return
        super().run_application()

    def _oversized_body(self, limit: int) -> int | None:
        """The body's size if it is over ``limit``; a chunked body within it is buffered."""
        if self.environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            body: bytes = self.wsgi_input.read(limit + 1)  # at most limit + 1 bytes in memory
            if len(body) > limit:
                return len(body)
            # Engine.IO reads CONTENT_LENGTH bytes: give it the body with its length.
            self.environ["wsgi.input"] = io.BytesIO(body)
            self.environ["CONTENT_LENGTH"] = str(len(body))
            return None
        length = self.content_length
        return length if isinstance(length, int) and length > limit else None

    def _refuse_body(self, size: int, limit: int) -> None:
        chunked = self.environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        declared = f"more than {limit}" if chunked else str(size)
        security_log.warning("request body refused: %s bytes, the limit is %s (client %s, %s %s)",
                             declared, limit, client_of(self), self.command, self.environ.get("PATH_INFO"))
        text = f"message too big: the body is {declared} bytes, the limit is {limit} bytes\n".encode()
        self.wsgi_input = Input(self.rfile, 0)  # nothing of the refused body is read, not even to discard it
        self.close_connection = True
        self.start_response("413 Payload Too Large", [
            ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(text))), ("Connection", "close"),
        ])
        self.write(text)


_idle: weakref.WeakSet[Handler] = weakref.WeakSet()  # handlers waiting for a keep-alive request
_upgraded: weakref.WeakSet[Handler] = weakref.WeakSet()  # handlers serving a websocket


def close_idle_connections() -> int:
    """End the keep-alive connections of closed servers that wait for a request; returns how many."""
    closed = 0
    for handler in list(_idle):
        sock = getattr(handler, "socket", None)  # gevent drops it from a handler that is done
        if handler.server.closed and sock is not None:
            try:
                sock.shutdown(socket.SHUT_RD)  # the pending read returns: the connection ends
                closed += 1
            except OSError:
                pass
    return closed


def close_websockets() -> int:
    """End the websocket connections of closed servers at the TCP level; returns how many.

    After a drain the Engine.IO side has closed them, but a client that does not
    answer the close frame (python-engineio's leaves its socket open) would keep
    the handler reading, and the worker alive, until gunicorn's graceful timeout.
    """
    closed = 0
    for handler in list(_upgraded):
        sock = getattr(handler, "socket", None)  # gevent drops it from a handler that is done
        if handler.server.closed and sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                closed += 1
            except OSError:
                pass
            _upgraded.discard(handler)
    return closed


def make_server(listener: Any, app: Any, **kwargs: Any) -> WSGIServer:
    """A pywsgi server with our handler."""
    return WSGIServer(listener, app, handler_class=Handler, **kwargs)


class _Server(PyWSGIServer):  # type: ignore[misc]
    """gunicorn's pywsgi server, known to its worker so that a stop closes its listener at once."""

    def start(self) -> None:
        super().start()
        _listening.add(self)


_listening: weakref.WeakSet[_Server] = weakref.WeakSet()


def allows_polling(app: object) -> bool:
    """Whether ``app``'s Engine.IO server (if it has one we can see) accepts the polling transport."""
    engine = getattr(getattr(app, "sio", None), "eio", None)
    return "polling" in (getattr(engine, "transports", None) or ())


#: logged by the first worker of a master with several workers and polling on
SHARED_SOCKET_WARNING = (
    "%d workers share one listening socket and Socket.IO accepts the polling transport: a client "
    "that starts with polling (the browser default) fails when its requests reach different workers. "
    "Run one worker per gunicorn master behind a sticky proxy (conf/nginx.conf), "
    "or set socketio.transports = websocket"
)


def _stop_accepting() -> None:
    for server in list(_listening):
        server.close()  # this worker's listener only: the master and the other workers keep theirs


class Worker(GeventWebSocketWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with WebSocket support and our handler.

    On a graceful stop (SIGTERM, or SIGHUP to the master) it stops accepting
    at once (gunicorn's own loop would accept for up to a second more, and
    reconnecting clients would land on the stopping worker), lets the socket
    events in flight finish and save, then closes the connections, so clients
    reconnect to a live worker and this one exits as soon as they are gone;
    keep-alive HTTP connections are closed after their current response.

    Several workers of one master share its listening socket, which breaks
    the polling transport: the first worker says so in the log once.
    """

    wsgi_handler = Handler
    server_class = _Server

    def init_process(self) -> None:
        untrack_spawns()  # in the worker, before its first greenlet (gunicorn's init_process then runs it)
        super().init_process()

    def load_wsgi(self) -> None:
        from .realtime import start_all

        super().load_wsgi()
        freeze_loaded_heap()
        start_all()  # the message queue listener, before the first socket (else a logout may pass it by)
        # Engine.IO's connections live in one process: the kernel hands each request to any worker of the master
        if self.cfg.workers > 1 and self.age == 1 and allows_polling(self.wsgi):
            self.log.warning(SHARED_SOCKET_WARNING, self.cfg.workers)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # A worker told to stop while it still imports the app has no sockets: importing
        # wsgisession.realtime here, inside that import, failed with a circular ImportError.
        realtime = sys.modules.get(f"{__package__}.realtime")
        if realtime is None or not hasattr(realtime, "drain_all"):
            return
        drain_all = realtime.drain_all
        gevent.spawn(_stop_accepting)  # out of the signal handler, at once
        timeout = max(1.0, float(self.cfg.graceful_timeout) - 1.0)

        def stop() -> None:
            drained = gevent.spawn(drain_all, timeout)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                close_idle_connections()
                if drained.dead:  # the events in flight are done and their connections told: end them
                    close_websockets()
                gevent.sleep(0.1)

        gevent.spawn(stop)
