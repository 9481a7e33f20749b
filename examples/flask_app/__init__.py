"""The Flask example: Flask views and Socket.IO events share one session.

The shared session is ``flask.request.environ['beaker.session']``, where
Beaker's ``SessionMiddleware`` would put it: wsgisession stands in its place
(Beaker's middleware is known to clash with Flask-SocketIO) and serves the
Socket.IO endpoint at ``/socket.io/`` beside the Flask app. Flask's own
cookie session (``flask.session``) is not used.

HTTP:   GET /login?user=NAME  a fresh session id holding ``user`` and ``n = 0``
        GET /incr             n + 1, atomically; answers n
        GET /                 the session as JSON
        GET /logout           ends the session (its sockets get ``session_ended``)
Socket: see :mod:`examples.flask_app.sockets` (``whoami``,
        ``incr``, ``set_note``): they read and write the same keys.

Two ways to mount it (README.rst beside this file):

- PasteDeploy: ``conf/flask.ini`` is a ``[pipeline:main]`` of the
  ``egg:wsgisession#main`` filter and :func:`app_factory`; the INI names the
  socket handlers (``wsgisession.handlers``).
- Python: :func:`create_app` wraps ``flask_app.wsgi_app`` with
  :func:`wsgisession.make_app`, Flask's usual way to add WSGI middleware.
"""
from __future__ import annotations

import os
from typing import Any

from flask import Flask, abort, jsonify, request

from wsgisession import SharedSession, make_app

from . import sockets


def shared_session() -> SharedSession:
    """The current request's shared session."""
    try:
        session: SharedSession = request.environ["beaker.session"]
    except KeyError:
        raise RuntimeError("no shared session: serve this app through wsgisession (see README.rst)") from None
    return session


def create_flask_app() -> Flask:
    """The plain Flask app: its views expect wsgisession around it."""
    app = Flask(__name__)

    @app.get("/login")
    def login() -> Any:
        user = request.args.get("user", "").strip()
        if not user:
            abort(400, "login needs ?user=NAME")
        session = shared_session()
        session.regenerate_id()  # a new id at login: a planted cookie is worth nothing
        session["user"] = user
        session["n"] = 0
        return jsonify(user=user)

    @app.get("/incr")
    def incr() -> Any:
        session = shared_session()
        if "user" not in session:
            abort(401, "not logged in: GET /login?user=NAME first")
        with session.atomic():
            session["n"] += 1
            n = session["n"]
        request.environ["wsgisession.app"].emit_to_session(session.id, "count", n)  # every tab sees it
        return jsonify(n=n)

    @app.get("/")
    def show() -> Any:
        return jsonify(dict(shared_session()))

    @app.get("/logout")
    def logout() -> Any:
        shared_session().delete()
        return jsonify(bye=True)

    return app


def app_factory(global_conf: dict[str, str], **local_conf: str) -> Flask:
    """PasteDeploy ``[app:flask]``: the plain Flask app, for a pipeline behind ``egg:wsgisession#main``."""
    if local_conf:
        raise ValueError(f"[app:flask] takes no settings (got {', '.join(sorted(local_conf))}): "
                         "session settings belong in the wsgisession filter's section")
    return create_flask_app()


def create_app(secret: str | None = None, **options: Any) -> Flask:
    """The Flask app with the shared session mounted from Python.

    ``secret`` defaults to the ``SESSION_SECRET`` environment variable;
    ``options`` are :func:`wsgisession.make_app`'s keyword arguments. For
    gunicorn: ``gunicorn -c conf/gunicorn.conf.py 'examples.flask_app:create_app()'``.
    """
    app = create_flask_app()
    app.wsgi_app = make_app(  # type: ignore[method-assign]
        app.wsgi_app, secret=secret or os.environ.get("SESSION_SECRET"), handlers=[sockets.register], **options
    )
    return app
