"""The chat example: express.io's "sessions shared by web and io requests", in Python.

``GET /`` records the login time in the session (over HTTP) and renders the
page, showing what HTTP reads from the session. Over the socket the user sets a
name and a feeling (``set_profile``); the server saves them into the same
session and acks the whole session back. A reload shows the name, read over
HTTP. ``GET /session`` answers the session as JSON; ``POST /logout`` (the
page's form, with its CSRF token) ends it, which ends the page's socket too. The browser client is the official
socket.io client from npm, served by the app itself at ``/socket.io.min.js``.
"""
from __future__ import annotations

import html
import json
import os
import secrets
import time
from typing import Any

from werkzeug.wrappers import Request, Response

from wsgisession import SharedSession, WsgiSessionApp, filter_app_factory

HERE = os.path.dirname(os.path.abspath(__file__))
CSRF_KEY = "_csrf"  # the page's form token, kept in the session
DEFAULT_CLIENT_JS = os.path.join(
    HERE, os.pardir, os.pardir, "node_modules", "socket.io-client", "dist", "socket.io.min.js"
)


class ChatApp:
    """The HTTP half of the chat example."""

    def __init__(self, *, client_js: str = DEFAULT_CLIENT_JS) -> None:
        self.client_js = client_js
        with open(os.path.join(HERE, "page.html"), encoding="utf-8") as fh:
            self.template = fh.read()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        session: SharedSession = environ["beaker.session"]
        if request.path == "/":
            response = self.page(session)
        elif request.path == "/session":
            response = Response(json.dumps(dict(session)), mimetype="application/json")
        elif request.path == "/logout":
            response = self.logout(request, session)
        elif request.path == "/socket.io.min.js":
            response = self.client()
        else:
            response = Response("not found\n", status=404)
        return response(environ, start_response)

    def logout(self, request: Request, session: SharedSession) -> Response:
        """``POST /logout`` with the page's CSRF token: a GET (an image tag on any page) signs nobody out."""
        if request.method != "POST":
            return Response("log out with the page's form (POST)\n", status=405, headers={"Allow": "POST"})
        expected = session.get(CSRF_KEY)
        if not isinstance(expected, str) or not secrets.compare_digest(request.form.get("csrf", ""), expected):
            return Response("bad or missing CSRF token: reload the page\n", status=400)
        session.delete()
        return Response(status=303, headers={"Location": "/"})

    def page(self, session: SharedSession) -> Response:
        session.setdefault("login_time", time.strftime("%Y-%m-%d %H:%M:%S"))
        token = session.setdefault(CSRF_KEY, secrets.token_urlsafe(32))
        data = {k: v for k, v in session.items() if k != CSRF_KEY}
        body = (
            self.template.replace("{{name}}", html.escape(str(data.get("name", "")), quote=True))
            .replace("{{feeling}}", html.escape(str(data.get("feeling", "")), quote=True))
            .replace("{{login_time}}", html.escape(str(data["login_time"])))
            .replace("{{csrf}}", html.escape(token, quote=True))
            .replace("{{session_json}}", html.escape(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)))
        )
        return Response(body, mimetype="text/html", headers={"Cache-Control": "no-store"})

    def client(self) -> Response:
        try:
            with open(self.client_js, "rb") as fh:
                return Response(fh.read(), mimetype="application/javascript")
        except FileNotFoundError:
            return Response("socket.io client not installed: run `make` (npm install)\n", status=404)


def register(app: WsgiSessionApp) -> None:
    """The chat's socket handlers."""

    @app.on("set_profile")
    def set_profile(sid: str, session: SharedSession, profile: Any) -> dict[str, Any]:
        if isinstance(profile, dict):
            for key in ("name", "feeling"):
                if isinstance(profile.get(key), str):
                    session[key] = profile[key].strip()[:100]
        return dict(session)

    @app.on("get_session")
    def get_session(sid: str, session: SharedSession) -> dict[str, Any]:
        return dict(session)


def app_factory(global_conf: dict[str, str], **local_conf: str) -> WsgiSessionApp:
    """PasteDeploy ``call:examples.chat:app_factory`` (``chat.client_js`` names the client file)."""
    client_js = local_conf.pop("chat.client_js", DEFAULT_CLIENT_JS)
    app = filter_app_factory(ChatApp(client_js=client_js), global_conf, **local_conf)
    register(app)
    return app
