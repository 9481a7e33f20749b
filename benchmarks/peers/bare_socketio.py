"""Peer: bare python-socketio on gevent, no session at all (the floor).

Events: ``echo`` acks its payload. HTTP: ``/login`` sets a cookie (so the load
client's steps are the same), nothing else.
"""
from gevent import monkey

monkey.patch_all()

import socketio  # noqa: E402

from _common import parser, serve  # noqa: E402


def http_app(environ, start_response):  # type: ignore[no-untyped-def]
    if environ["PATH_INFO"] == "/login":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "bare=1; Path=/")])
        return [b"hello\n"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


def main() -> None:
    args = parser(__doc__).parse_args()
    sio = socketio.Server(async_mode="gevent")

    @sio.on("echo")
    def echo(sid, payload=None):  # type: ignore[no-untyped-def]
        return payload

    serve(socketio.WSGIApp(sio, http_app), args.port, nodelay=not args.nagle)


if __name__ == "__main__":
    main()
