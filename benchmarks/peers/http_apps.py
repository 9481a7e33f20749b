"""The HTTP path's apps: one view that reads the session and one that writes it, under each session layer.

    python http_apps.py --app wsgisession/sqlite --dir DIR --port P       # serve it (the peers' server)
    python http_apps.py --app beaker/file --dir DIR --inprocess 2000      # CPU per request, no network: JSON

Apps (``--app``):

``bare``
    a minimal Werkzeug app, no session: the floor (both views answer ``0``).
``wsgisession/{memory,sqlite,file,redis}``
    ``make_app`` around the same Werkzeug view, on that store (``beaker.session.timeout``
    3600, as the counter example): ``/write`` is ``session["n"] = session.get("n", 0) + 1``
    (autosaved, merged under the lock), ``/read`` reads ``session["n"]``.
``beaker/{memory,file,redis}``
    Beaker's ``SessionMiddleware`` around it, Beaker's defaults (pickle;
    ``save_accessed_time``, so a read request writes the session back too), ``/write``
    calls ``session.save()``.
``flask``
    a bare Flask app (Flask's default signed-cookie session, untouched): Flask's own floor.
``flask/{memory,file,redis}``
    Flask + Flask-Session (cachelib ``SimpleCache`` in the process, cachelib
    ``FileSystemCache``, Redis), as ``flask_socketio_peer.py``.

Every app also answers ``/login`` (a new session with ``n = 0``). In process, the app is
called as a WSGI callable with a ready environ and the cookie of one login; the CPU time
(``time.thread_time``) and wall time per request are the medians of ``--rounds``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from http.cookies import SimpleCookie
from typing import Any, Callable

SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
PATHS = ("read", "write")
APPS = ["bare", "wsgisession/memory", "wsgisession/sqlite", "wsgisession/file", "wsgisession/redis",
        "beaker/memory", "beaker/file", "beaker/redis", "flask", "flask/memory", "flask/file", "flask/redis"]

WSGIApp = Callable[..., Any]


def werkzeug_view(session_key: str | None) -> WSGIApp:
    from werkzeug.wrappers import Request, Response

    @Request.application  # type: ignore[arg-type]
    def view(request: Request) -> Response:
        if session_key is None:
            return Response("0")
        session = request.environ[session_key]
        path = request.path
        if path == "/login":
            session["n"] = 0
            if not hasattr(session, "atomic"):  # Beaker's own session: its middleware saves only when asked
                session.save()
            return Response("0")
        if path == "/write":
            session["n"] = session.get("n", 0) + 1
            if not hasattr(session, "atomic"):  # Beaker's own session
                session.save()
            return Response(str(session["n"]))
        return Response(str(session.get("n")))

    return view


def build(name: str, directory: str, redis_url: str | None, *, steady: bool = False) -> WSGIApp:
    stack, _, store = name.partition("/")
    os.makedirs(directory, exist_ok=True)
    if stack == "bare":
        return werkzeug_view(None)
    if stack == "wsgisession":
        from wsgisession import make_app

        options: dict[str, Any] = {"memory": {"type": "memory"}, "sqlite": {"type": "sqlite", "data_dir": directory},
                                   "file": {"type": "file", "data_dir": directory},
                                   "redis": {"type": "ext:redis", "url": redis_url}}[store]
        if steady:  # no clock-driven work within a run: touch saves, the sweep (callgrind_http.py)
            options.update(touch_interval=86400, sweep_interval=None)
        return make_app(werkzeug_view("beaker.session"), secret=SECRET, timeout=3600, **options)
    if stack == "beaker":
        from beaker.middleware import SessionMiddleware

        beaker: dict[str, Any] = {"memory": {"type": "memory"}, "file": {"type": "file", "data_dir": directory},
                                  "redis": {"type": "ext:redis", "url": redis_url}}[store]
        beaker.update({"secret": SECRET, "key": "beaker.session.id", "timeout": 3600, "httponly": True})
        return SessionMiddleware(werkzeug_view("beaker.session"), {"session." + k: v for k, v in beaker.items()})
    if stack == "flask":
        return flask_app(store, directory, redis_url)
    raise SystemExit(f"unknown app {name!r}: one of {', '.join(APPS)}")


def flask_app(store: str, directory: str, redis_url: str | None) -> WSGIApp:
    from flask import Flask, session

    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    if store:
        from flask_session import Session

        if store == "redis":
            import redis

            app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(str(redis_url)))
        elif store == "memory":
            from cachelib.simple import SimpleCache

            app.config.update(SESSION_TYPE="cachelib",
                              SESSION_CACHELIB=SimpleCache(threshold=100000, default_timeout=0))
        else:
            from cachelib.file import FileSystemCache

            app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=FileSystemCache(directory, threshold=0))
        Session(app)

    @app.route("/login")
    def login() -> str:
        if store:
            session["n"] = 0
        return "0"

    @app.route("/write")
    def write() -> str:
        if not store:
            return "0"
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    @app.route("/read")
    def read() -> str:
        return str(session.get("n")) if store else "0"

    return app


# -- in process -----------------------------------------------------------------
def call(app: WSGIApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
        answer["status"], answer["headers"] = status, headers
        return lambda data: None

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return answer["status"], answer["headers"], data


def environ_for(path: str, cookie: str | None) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    headers = {"Cookie": cookie} if cookie else {}
    builder = EnvironBuilder(path=path, headers=headers, base_url="http://127.0.0.1:8000/")
    try:
        return builder.get_environ()
    finally:
        builder.close()


def login(app: WSGIApp) -> str:
    """The Cookie header of a new session of ``app``."""
    status, headers, _ = call(app, environ_for("/login", None))
    assert status.startswith("200"), status
    jar: SimpleCookie = SimpleCookie()
    for name, value in headers:
        if name.lower() == "set-cookie":
            jar.load(value)
    return "; ".join(f"{k}={m.value}" for k, m in jar.items())


def inprocess(app: WSGIApp, requests: int, rounds: int) -> dict[str, Any]:
    """CPU and wall microseconds per request of each path (median of rounds), after a warm-up."""
    import io

    cookie = login(app)
    out: dict[str, Any] = {}
    for path in PATHS:
        template = environ_for(f"/{path}", cookie)
        template.pop("wsgi.input")
        cpu, wall = [], []
        for rnd in range(rounds + 1):
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            for _ in range(requests):
                environ = dict(template)
                environ["wsgi.input"] = io.BytesIO(b"")
                status, _, _ = call(app, environ)
            cpu1, wall1 = time.thread_time(), time.perf_counter()
            if not status.startswith("200"):
                raise SystemExit(f"/{path} answered {status}")
            if rnd:  # the first is the warm-up
                cpu.append((cpu1 - cpu0) / requests * 1e6)
                wall.append((wall1 - wall0) / requests * 1e6)
        out[path] = {"cpu_us": statistics.median(cpu), "wall_us": statistics.median(wall), "rounds": cpu}
    return out


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("--app", required=True, choices=APPS)
    args.add_argument("--dir", required=True, help="where the app's store keeps sessions")
    args.add_argument("--redis-url")
    args.add_argument("--port", type=int, help="serve on this port (the peers' gevent server)")
    args.add_argument("--inprocess", type=int, metavar="N", help="measure N requests per path in process; JSON out")
    args.add_argument("--rounds", type=int, default=5)
    args.add_argument("--steady", action="store_true",
                      help="ours: no touch saves nor sweeps within a run (for counting instructions)")
    options = args.parse_args(argv)
    if options.inprocess:
        result = inprocess(build(options.app, options.dir, options.redis_url), options.inprocess, options.rounds)
        print(json.dumps({"app": options.app, **result}))
        return 0
    from gevent import monkey

    monkey.patch_all()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import serve

    serve(build(options.app, options.dir, options.redis_url, steady=options.steady), options.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
