"""What the Python peers share: the same gevent server as ``wsgisession serve``.

Every Python peer runs on gevent's pywsgi with gevent-websocket's handler and
TCP_NODELAY (``--nagle`` leaves Nagle on, as stock pywsgi does), one process,
on the port run.py gives it, until SIGTERM, with gevent's records of where
greenlets were spawned off (:func:`wsgisession.server.untrack_spawns`, unless
``GEVENT_TRACK_GREENLET_TREE`` is set). So the peers differ from ours only
in what they do per request and per event, not in the server under them.
"""
from __future__ import annotations

import argparse
import signal
import socket
import sys
from typing import Any

#: the counter's secret in every peer (benchmark only)
SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def parser(description: str) -> argparse.ArgumentParser:
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--port", type=int, required=True)
    args.add_argument("--nagle", action="store_true", help="leave Nagle's algorithm on (stock pywsgi)")
    return args


def serve(app: Any, port: int, *, nodelay: bool = True) -> None:
    import gevent
    from gevent.pywsgi import WSGIServer
    from geventwebsocket.handler import WebSocketHandler

    from wsgisession.server import untrack_spawns

    untrack_spawns()  # as wsgisession serve does: python-socketio spawns a greenlet per event

    class Handler(WebSocketHandler):  # type: ignore[misc]
        def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
            if nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().__init__(sock, address, server, rfile)

    server = WSGIServer(("127.0.0.1", port), app, handler_class=Handler)
    gevent.signal_handler(signal.SIGTERM, server.stop, 5)
    gevent.signal_handler(signal.SIGINT, server.stop, 5)
    sys.stderr.write(f"serving on http://127.0.0.1:{port}/ (TCP_NODELAY {'on' if nodelay else 'off'})\n")
    server.serve_forever()
