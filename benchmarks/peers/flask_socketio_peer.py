"""Peer: Flask-SocketIO + Flask-Session (server-side sessions shared by HTTP and
events: ``manage_session=False``, as Flask-SocketIO documents for that case).

    python flask_socketio_peer.py --port P --type memory
    python flask_socketio_peer.py --port P --type filesystem --data-dir DIR
    python flask_socketio_peer.py --port P --type redis --url redis://127.0.0.1:6379/0

HTTP: POST /login?user=NAME, POST /incr, GET /n.  Events: echo, whoami, incr (acked).
"""
from gevent import monkey

monkey.patch_all()

from flask import Flask, request, session  # noqa: E402
from flask_session import Session  # noqa: E402
from flask_socketio import SocketIO  # noqa: E402

from _common import SECRET, parser, serve  # noqa: E402


def build(kind: str, data_dir: str | None, url: str | None) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    if kind == "redis":
        import redis

        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(url))
    elif kind == "memory":  # in-process, as wsgisession/memory; threshold: no pruning within a run
        from cachelib.simple import SimpleCache

        app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache(threshold=100000, default_timeout=0))
    else:
        from cachelib.file import FileSystemCache

        app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=FileSystemCache(data_dir, threshold=0))
    Session(app)
    sio = SocketIO(app, async_mode="gevent", manage_session=False)

    @app.post("/login")
    def login() -> str:
        user = request.args.get("user", "")
        session.clear()
        session["user"] = user
        session["n"] = 0
        return f"hello {user}\n"

    @app.post("/incr")
    def incr_http() -> tuple[str, int] | str:
        if "user" not in session:
            return "not logged in\n", 401
        session["n"] += 1
        return f"{session['n']}\n"

    @app.route("/n")
    def n() -> tuple[str, int] | str:
        if "user" not in session:
            return "not logged in\n", 401
        return f"{session['n']}\n"

    @sio.on("echo")
    def echo(payload=None):  # type: ignore[no-untyped-def]
        return payload

    @sio.on("whoami")
    def whoami():  # type: ignore[no-untyped-def]
        return session.get("user")

    @sio.on("incr")
    def incr():  # type: ignore[no-untyped-def]
        session["n"] = session.get("n", 0) + 1
        return session["n"]

    return app


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--type", default="filesystem", choices=["memory", "filesystem", "redis"])
    args.add_argument("--data-dir")
    args.add_argument("--url")
    options = args.parse_args()
    serve(build(options.type, options.data_dir, options.url), options.port, nodelay=not options.nagle)


if __name__ == "__main__":
    main()
