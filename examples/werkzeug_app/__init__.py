"""The Werkzeug example: a bare Werkzeug app wrapped by a Python call.

No INI is needed: :func:`create_app` calls :func:`wsgisession.make_app` with
keyword arguments and registers the socket handlers with ``@app.on``::

    from examples.werkzeug_app import create_app
    application = create_app(secret=os.environ["SESSION_SECRET"])

gunicorn can call it directly::

    SESSION_SECRET=... gunicorn -c conf/gunicorn.conf.py 'examples.werkzeug_app:create_app()'

and :func:`app_factory` lets ``wsgisession serve conf/werkzeug.ini`` serve it,
turning the INI section into the same keyword arguments.

HTTP:   POST /login?user=NAME  a fresh session id holding ``user`` and ``n = 0``
        POST /incr             n + 1, atomically; answers n
        GET /                  the session as JSON
        POST /logout           ends the session (its sockets get ``session_ended``)
Socket: ``whoami``, ``incr``, ``set_note``: the same keys.

The routes that change state take POST only, and refuse a POST that a browser
says comes from another site (its ``Origin`` header, or ``Sec-Fetch-Site``), so
no other page can log anyone in or out (CSRF); a client that sends neither
header (curl, a script) is not a browser carrying someone's cookie by accident.
An app with HTML forms keeps a token in the session instead (the chat example).
"""
from __future__ import annotations

import json
import os
from typing import Any

from werkzeug.wrappers import Request, Response

from wsgisession import SharedSession, WsgiSessionApp, make_app
from wsgisession.config import from_settings
from wsgisession.origins import is_cross_site_request


STATE_CHANGING = {"/login", "/incr", "/logout"}


def _json(data: Any, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json", headers=headers)




@Request.application
def hello_app(request: Request) -> Response:
    """The plain Werkzeug app: it finds the shared session where Beaker's middleware puts it."""
    session: SharedSession = request.environ["beaker.session"]
    if request.path in STATE_CHANGING:
        if request.method != "POST":
            return _json({"error": f"{request.path} changes the session: POST it"}, 405, Allow="POST")
        if is_cross_site_request(request.environ):
            return _json({"error": "cross-site request refused"}, 403)
    if request.path == "/login":
        user = request.args.get("user", "").strip()
        if not user:
            return _json({"error": "login needs ?user=NAME"}, 400)
        session.regenerate_id()  # a new id at login: a planted cookie is worth nothing
        session["user"] = user
        session["n"] = 0
        return _json({"user": user})
    if request.path == "/incr":
        if "user" not in session:
            return _json({"error": "not logged in: POST /login?user=NAME first"}, 401)
        with session.atomic():
            session["n"] += 1
            n = session["n"]
        return _json({"n": n})
    if request.path == "/":
        return _json(dict(session))
    if request.path == "/logout":
        session.delete()
        return _json({"bye": True})
    return _json({"error": "not found"}, 404)


def register(app: WsgiSessionApp) -> None:
    """The socket handlers: they read and write the HTTP views' keys."""

    @app.on("whoami")
    def whoami(sid: str, session: SharedSession) -> Any:
        return session.get("user")

    @app.on("incr")
    def incr(sid: str, session: SharedSession) -> int:
        with session.atomic():
            session["n"] = session.get("n", 0) + 1
            return int(session["n"])

    @app.on("set_note")
    def set_note(sid: str, session: SharedSession, note: Any) -> dict[str, Any]:
        if isinstance(note, str):
            session["note"] = note[:200]
        return dict(session)


def create_app(secret: str | None = None, **options: Any) -> WsgiSessionApp:
    """The app wrapped from Python: ``options`` are :func:`wsgisession.make_app`'s.

    ``secret`` defaults to the ``SESSION_SECRET`` environment variable.
    """
    options.setdefault("data_dir", os.path.join(os.getcwd(), "data", "werkzeug-sessions"))
    app = make_app(hello_app, secret=secret or os.environ.get("SESSION_SECRET"), **options)
    register(app)
    return app


def app_factory(global_conf: dict[str, str], **local_conf: str) -> WsgiSessionApp:
    """PasteDeploy ``[app:main]`` for ``wsgisession serve``: the section's keys as ``create_app``'s arguments."""
    return create_app(**from_settings(local_conf))
