"""Serving: the gevent WebSocket handler with TCP_NODELAY, and a gunicorn worker.

gevent's pywsgi writes a response's headers and body separately; on a
keep-alive connection Nagle's algorithm plus the client's delayed ACK then
add ~40 ms to every request. :class:`Handler` turns Nagle off.

For gunicorn::

    gunicorn --paste conf/counter.ini -k wsgisession.worker.Worker
"""
from __future__ import annotations

import socket
from typing import Any

from geventwebsocket.gunicorn.workers import GeventWebSocketWorker
from geventwebsocket.handler import WebSocketHandler
from gevent.pywsgi import WSGIServer


def _nodelay(sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not TCP (a Unix socket)
        pass


class Handler(WebSocketHandler):  # type: ignore[misc]
    """gevent-websocket's handler, without Nagle delays."""

    def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
        _nodelay(sock)
        super().__init__(sock, address, server, rfile)


def make_server(listener: Any, app: Any, **kwargs: Any) -> WSGIServer:
    """A pywsgi server with our handler."""
    return WSGIServer(listener, app, handler_class=Handler, **kwargs)


class Worker(GeventWebSocketWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with WebSocket support and our handler."""

    wsgi_handler = Handler
