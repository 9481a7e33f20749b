"""A small app for the integration tests: every session operation over HTTP and sockets.

Served as ``use = call:tests.apps:app_factory`` from a generated INI.
"""
from __future__ import annotations

import gc
import json
import os
from typing import Any

import gevent
from werkzeug.wrappers import Request, Response

from tests.helpers import CLIENT_JS
from wsgisession import SessionNamespace, SharedSession, WsgiSessionApp, filter_app_factory


#: a page that loads the official client and our helper, as README.rst tells users to; it touches no session
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>lab</title></head>
<body><p id="status">loaded</p>
<script src="{base}/socket.io.min.js"></script>
<script src="{base}/wsgisession/client.js"></script>
</body></html>
"""


def page(base: str = "") -> Response:
    return Response(PAGE.format(base=base), mimetype="text/html", headers={"Cache-Control": "no-store"})


def client_js() -> Response:
    with open(CLIENT_JS, "rb") as fh:
        return Response(fh.read(), mimetype="text/javascript")


def beaker_report(session: SharedSession, other_id: str) -> dict[str, Any]:
    """Beaker's session API, used as a Beaker app uses it: the same answers in a view and a handler."""
    before_data = {"created": session.created > 0, "last_accessed": session.last_accessed is not None}
    found = session.get_by_id(other_id)
    session.lock()
    try:
        session["n"] = session.get("n", 0) + 1
    finally:
        session.unlock()
    session["late"] = "after"
    session.save()  # Beaker's: saved at the end of the request or event
    return {
        **before_data,
        "truthy": bool(session), "has_key": session.has_key("n"), "copy": sorted(session.copy()),
        "creation_key": session["_creation_time"] == session.created, "accessed": session.accessed(),
        "by_id": None if found is None else found.copy(), "no_such_id": session.get_by_id("A" * 43),
        "dirty": session.dirty(), "path": session.path, "httponly": session.httponly,
        "cookie_expires": session.cookie_expires,
    }


@Request.application  # type: ignore[arg-type]
def lab(request: Request) -> Response:
    path = request.path
    if path == "/page":
        return page()
    if path == "/socket.io.min.js":
        return client_js()
    if path == "/headers":  # what the browser sent (the tests check the facts the origin policy rests on)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "cookie"}
        return Response(json.dumps(headers), mimetype="application/json")
    if path == "/spawns":  # whether this server process records where greenlets are spawned (gevent's tree)
        spawned = gevent.spawn(lambda: None)
        spawned.join()
        return Response(json.dumps({"tracked": bool(gevent.config.track_greenlet_tree),
                                    "stack": spawned.spawning_stack is not None,
                                    "frozen": gc.get_freeze_count() > 0}), mimetype="application/json")
    session: SharedSession = request.environ["beaker.session"]
    if path == "/set":
        for key, value in request.args.items():
            session[key] = value
    elif path == "/nested":
        session.setdefault("cart", {"items": []})["items"].append(request.args["item"])
    elif path == "/incr":
        with session.atomic():
            session["n"] = session.get("n", 0) + 1
    elif path == "/logout":
        session.delete()
        return Response("bye")
    elif path == "/rotate":
        session.regenerate_id()
    elif path == "/unjsonable":
        session["bad"] = {1, 2, 3}
    elif path == "/emit":
        request.environ["wsgisession.app"].emit_to_session(session.id, "note", request.args["msg"])
    elif path == "/kick":
        request.environ["wsgisession.app"].disconnect_session(session.id, reason="kicked")
    elif path == "/beaker":
        return Response(json.dumps(beaker_report(session, request.args["other"])), mimetype="application/json")
    elif path == "/sockets":
        return Response(json.dumps(request.environ["wsgisession.app"].sockets_of(session.id)))
    elif path == "/bind":  # a login: a new id, tied to the user
        session.regenerate_id()
        session.bind_user(request.args["user"], label=request.args.get("label"))
    elif path == "/devices":
        devices = request.environ["wsgisession.app"].sessions_of_user(session.user_id or "", current=session)
        return Response(json.dumps([{"label": d.label, "sockets": d.sockets, "current": d.current}
                                    for d in devices]), mimetype="application/json")
    elif path == "/others":
        ended = request.environ["wsgisession.app"].end_user_sessions(session.user_id or "", keep=session)
        return Response(json.dumps({"ended": ended}), mimetype="application/json")
    elif path != "/get":
        return Response("not found", status=404)
    return Response(json.dumps(dict(session)), mimetype="application/json")


class Lab(SessionNamespace):
    """The same operations in a class-based namespace at /lab."""

    def __init__(self) -> None:
        super().__init__("/lab")

    def on_connect(self, sid: str, session: SharedSession | None, environ: Any, auth: Any) -> None:
        if session is not None:
            session["lab_connects"] = session.get("lab_connects", 0) + 1

    def on_get(self, sid: str, session: SharedSession) -> dict[str, Any]:
        return dict(session)

    def on_set(self, sid: str, session: SharedSession, values: dict[str, Any]) -> dict[str, Any]:
        session.update(values)
        return dict(session)


def register(app: WsgiSessionApp) -> None:
    @app.on("get")
    def get(sid: str, session: SharedSession | None) -> Any:
        return None if session is None else dict(session)

    @app.on("set")
    def set_(sid: str, session: SharedSession, values: dict[str, Any]) -> dict[str, Any]:
        session.update(values)
        return dict(session)

    @app.on("nested")
    def nested(sid: str, session: SharedSession, item: str) -> dict[str, Any]:
        session.setdefault("cart", {"items": []})["items"].append(item)
        return dict(session)

    @app.on("set_and_save")
    def set_and_save(sid: str, session: SharedSession, values: dict[str, Any]) -> bool:
        session.update(values)
        session.save()  # Beaker's: saved when the handler returns
        return session.dirty()

    @app.on("incr")
    def incr(sid: str, session: SharedSession) -> int:
        with session.atomic():
            session["n"] = session.get("n", 0) + 1
            return int(session["n"])

    @app.on("login")
    def login(sid: str, session: SharedSession, user: str) -> dict[str, Any]:
        """A login over the socket: the id rotates, and the page gets its cookie by the exchange."""
        session["user"] = user
        session.regenerate_id()
        return dict(session)

    @app.on("start")
    def start(sid: str, session: SharedSession | None, values: dict[str, Any]) -> dict[str, Any]:
        """An anonymous socket starts a session (allow_anonymous)."""
        if session is None:
            session = app.start_session(sid)
        session.update(values)
        return dict(session)

    @app.on("beaker")
    def beaker(sid: str, session: SharedSession, other_id: str) -> dict[str, Any]:
        return beaker_report(session, other_id)

    @app.on("whoami_pid")
    def whoami_pid(sid: str, session: SharedSession | None) -> int:
        return os.getpid()

    @app.on("echo")
    def echo(sid: str, session: SharedSession | None, payload: Any = None) -> Any:
        return payload

    @app.on("unjsonable")
    def unjsonable(sid: str, session: SharedSession) -> str:
        session["bad"] = object()
        try:
            session.save()
        except Exception as exc:  # the test checks the error's type and message
            session.revert()
            return f"{type(exc).__name__}: {exc}"
        return "saved"

    app.register_namespace(Lab())


def app_factory(global_conf: dict[str, str], **local_conf: str) -> WsgiSessionApp:
    app = filter_app_factory(lab, global_conf, **local_conf)
    register(app)
    return app
