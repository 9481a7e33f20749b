"""Peer: python-socketio + Beaker, hand-rolled: each event loads the Beaker session
from the handshake's cookie, and saves it when it changed. No locks (Beaker has
none that work across greenlets); HTTP goes through Beaker's SessionMiddleware.

    python beaker_socketio.py --port P --type file --data-dir DIR
    python beaker_socketio.py --port P --type ext:redis --url redis://127.0.0.1:6379/0

HTTP: POST /login?user=NAME, POST /incr, GET /n (any method: the load client POSTs).  Events: echo, whoami, incr (acked).
"""
from gevent import monkey

monkey.patch_all()

from urllib.parse import parse_qs  # noqa: E402

import socketio  # noqa: E402
from beaker.middleware import SessionMiddleware  # noqa: E402
from beaker.session import Session  # noqa: E402

from _common import SECRET, parser, serve  # noqa: E402


def text(start_response, body, status="200 OK"):  # type: ignore[no-untyped-def]
    start_response(status, [("Content-Type", "text/plain")])
    return [body.encode()]


def counter(environ, start_response):  # type: ignore[no-untyped-def]
    session = environ["beaker.session"]
    path = environ["PATH_INFO"]
    if path == "/login":
        user = parse_qs(environ.get("QUERY_STRING", "")).get("user", [""])[0]
        session.invalidate()
        session["user"] = user
        session["n"] = 0
        session.save()
        return text(start_response, f"hello {user}\n")
    if "user" not in session:
        return text(start_response, "not logged in\n", "401 Unauthorized")
    if path == "/incr":
        session["n"] += 1
        session.save()
        return text(start_response, f"{session['n']}\n")
    if path == "/n":
        return text(start_response, f"{session['n']}\n")
    return text(start_response, "not found\n", "404 Not Found")


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--type", default="file")
    args.add_argument("--data-dir")
    args.add_argument("--url")
    options = args.parse_args()
    beaker = {"type": options.type, "secret": SECRET, "key": "beaker.session.id", "timeout": 3600,
              "httponly": True}
    if options.data_dir:
        beaker["data_dir"] = options.data_dir
    if options.url:
        beaker["url"] = options.url
    sio = socketio.Server(async_mode="gevent")

    def load(sid):  # type: ignore[no-untyped-def]
        environ = sio.get_environ(sid)
        return Session({"cookie": environ.get("HTTP_COOKIE", ""), "cookie_out": None}, **beaker)

    @sio.on("echo")
    def echo(sid, payload=None):  # type: ignore[no-untyped-def]
        return payload

    @sio.on("whoami")
    def whoami(sid):  # type: ignore[no-untyped-def]
        return load(sid).get("user")

    @sio.on("incr")
    def incr(sid):  # type: ignore[no-untyped-def]
        session = load(sid)
        session["n"] = session.get("n", 0) + 1
        session.save()
        return session["n"]

    app = socketio.WSGIApp(sio, SessionMiddleware(counter, {"session." + k: v for k, v in beaker.items()}))
    serve(app, options.port, nodelay=not options.nagle)


if __name__ == "__main__":
    main()
