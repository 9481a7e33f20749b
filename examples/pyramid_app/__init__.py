"""The Pyramid example: a Pyramid app configured from its own INI, sharing its session with Socket.IO.

``conf/pyramid.ini`` holds the whole deployment: the app's section
(``[app:pyramid]``, Pyramid settings and this app's own ``greeting``), the
``egg:wsgisession#main`` filter with the session settings and the socket
handlers, and ``[pipeline:main]`` putting one before the other. Views read the
shared session from ``request.environ['beaker.session']`` (where
``pyramid_beaker``'s users find Beaker's), also offered as
``request.shared_session``.

HTTP:   GET /login?user=NAME  a fresh session id holding ``user`` and ``n = 0``
        GET /incr             n + 1, atomically; answers n
        GET /                 the session as JSON
        GET /logout           ends the session (its sockets get ``session_ended``)
Socket: :class:`examples.pyramid_app.sockets.CounterNamespace`
        (``whoami``, ``incr``, ``set_note``) reads and writes the same keys.
"""
from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPBadRequest, HTTPUnauthorized
from pyramid.request import Request

from wsgisession import SharedSession


def shared_session(request: Request) -> SharedSession:
    """``request.shared_session``: the request's shared session."""
    try:
        session: SharedSession = request.environ["beaker.session"]
    except KeyError:
        raise RuntimeError("no shared session: put the egg:wsgisession#main filter in front (conf/pyramid.ini)") from None
    return session


def login(request: Request) -> dict[str, Any]:
    user = request.params.get("user", "").strip()
    if not user:
        raise HTTPBadRequest("login needs ?user=NAME")
    session = request.shared_session
    session.regenerate_id()  # a new id at login: a planted cookie is worth nothing
    session["user"] = user
    session["n"] = 0
    return {"greeting": f"{request.registry.settings['greeting']} {user}"}


def incr(request: Request) -> dict[str, Any]:
    session = request.shared_session
    if "user" not in session:
        raise HTTPUnauthorized("not logged in: GET /login?user=NAME first")
    with session.atomic():
        session["n"] += 1
        n = session["n"]
    return {"n": n}


def show(request: Request) -> dict[str, Any]:
    return dict(request.shared_session)


def logout(request: Request) -> dict[str, Any]:
    request.shared_session.delete()
    return {"bye": True}


def main(global_config: dict[str, str], **settings: str) -> Any:
    """PasteDeploy ``[app:pyramid]``: Pyramid's usual ``main`` (settings from the app's section)."""
    settings.setdefault("greeting", "hello")
    with Configurator(settings=settings) as config:
        config.add_request_method(shared_session, "shared_session", reify=True)
        for name, path, view in (("login", "/login", login), ("incr", "/incr", incr),
                                 ("show", "/", show), ("logout", "/logout", logout)):
            config.add_route(name, path)
            config.add_view(view, route_name=name, renderer="json", request_method="GET")
        return config.make_wsgi_app()
