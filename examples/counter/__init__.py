"""The counter example (also the benchmark app).

HTTP:   POST /login?user=NAME  a new session with ``user`` and ``n = 0``
        POST /incr             n + 1, atomically; answers n
        GET /n                 answers n
        POST /logout           ends the session (and its sockets)

The routes that change the session take POST only and refuse one that a browser
says another site's page sent (``is_cross_site_request``: CSRF); curl sends no
such header (``curl -X POST``).
Socket: ``whoami``  acks the user
        ``incr``    atomic n + 1, acks n
        ``echo``    acks its payload without touching the session

Connections without a session are refused.
"""
from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from wsgisession import SharedSession, WsgiSessionApp, filter_app_factory
from wsgisession.origins import is_cross_site_request

STATE_CHANGING = frozenset({"/login", "/incr", "/logout"})


@Request.application  # type: ignore[arg-type]
def counter_app(request: Request) -> Response:
    session: SharedSession = request.environ["beaker.session"]
    if request.path in STATE_CHANGING:
        if request.method != "POST":
            return Response(f"{request.path} changes the session: POST it\n", status=405, headers={"Allow": "POST"})
        if is_cross_site_request(request.environ):
            return Response("cross-site request refused\n", status=403)
    if request.path == "/login":
        user = request.args.get("user", "").strip()
        if not user:
            return Response("login needs ?user=NAME\n", status=400)
        session.invalidate()
        session["user"] = user
        session["n"] = 0
        return Response(f"hello {user}\n")
    if request.path == "/logout":
        session.delete()
        return Response("bye\n")
    if "user" not in session:
        return Response("not logged in: POST /login?user=NAME first\n", status=401)
    if request.path == "/incr":
        with session.atomic():
            session["n"] += 1
            n = session["n"]
        return Response(f"{n}\n")
    if request.path == "/n":
        return Response(f"{session['n']}\n")
    return Response("not found\n", status=404)


def register(app: WsgiSessionApp) -> None:
    """The counter's socket handlers."""

    @app.on("whoami")
    def whoami(sid: str, session: SharedSession) -> Any:
        return session.get("user")

    @app.on("incr")
    def incr(sid: str, session: SharedSession) -> int:
        with session.atomic():
            session["n"] = session.get("n", 0) + 1
            return int(session["n"])

    @app.on("echo")
    def echo(sid: str, session: SharedSession, payload: Any = None) -> Any:
        return payload


def app_factory(global_conf: dict[str, str], **local_conf: str) -> WsgiSessionApp:
    """PasteDeploy ``call:examples.counter:app_factory``."""
    app = filter_app_factory(counter_app, global_conf, **local_conf)
    register(app)
    return app
