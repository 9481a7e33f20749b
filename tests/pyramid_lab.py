"""A small Pyramid app for tests/test_pyramid.py, written with Pyramid's idioms.

Views and socket handlers are declared with decorators and found by
``config.scan()``; the security policy keeps the user id in ``request.session``
through wsgisession's ``SessionAuthenticationHelper``.
"""
from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.security import Allowed, Denied, forget, remember
from pyramid.view import view_config

from tests.helpers import SECRET
from wsgisession import WsgiSessionApp
from wsgisession.pyramid import SessionAuthenticationHelper, make_wsgi_app, socket_event

SEEN: list[Any] = []


class SecurityPolicy:
    def __init__(self) -> None:
        self.helper = SessionAuthenticationHelper()

    def identity(self, request: Request) -> Any:
        userid = self.helper.authenticated_userid(request)
        return {"name": userid} if userid else None

    def authenticated_userid(self, request: Request) -> Any:
        return request.identity["name"] if request.identity else None

    def permits(self, request: Request, context: Any, permission: str) -> Any:
        return Allowed("in") if request.identity else Denied("out")

    def remember(self, request: Request, userid: str, **kw: Any) -> Any:
        return self.helper.remember(request, userid, **kw)

    def forget(self, request: Request, **kw: Any) -> Any:
        return self.helper.forget(request, **kw)


@view_config(route_name="login", renderer="json")
def login(request: Request) -> Any:
    request.response.headerlist.extend(remember(request, request.matchdict["name"]))
    request.session["n"] = 0
    return {"user": request.matchdict["name"]}


@view_config(route_name="logout", renderer="json")
def logout(request: Request) -> Any:
    request.response.headerlist.extend(forget(request))
    request.session.flash("signed out")  # the request goes on with a new session
    return {"bye": True}


@view_config(route_name="show", renderer="json")
def show(request: Request) -> Any:
    return dict(request.session)


@view_config(route_name="set", renderer="json")
def set_value(request: Request) -> Any:
    request.session[request.matchdict["key"]] = request.matchdict["value"]
    return dict(request.session)


@view_config(route_name="attrs", renderer="json")
def attrs(request: Request) -> Any:
    session = request.session
    csrf = session.get_csrf_token()
    return {"new": session.new, "created": session.created, "csrf": csrf}


@socket_event("connect")
def on_connect(request: Request, auth: Any) -> Any:
    SEEN.append(("connect", request.authenticated_userid, auth, request.sid))
    return auth != "refuse"


@socket_event("disconnect")
def on_disconnect(request: Request, reason: Any) -> None:
    SEEN.append(("disconnect", request.session.get("user_note"), reason is not None))


@socket_event("whoami")
def whoami(request: Request) -> Any:
    return {"user": request.authenticated_userid, "identity": request.identity,
            "greeting": request.registry.settings["greeting"], "path": request.path}


@socket_event("incr")
def incr(request: Request) -> int:
    with request.session.atomic():
        n = request.session["n"] = request.session.get("n", 0) + 1
    request.wsgisession.emit_to_session(request.session.id, "count", n)
    return int(n)


@socket_event("note")
def note(request: Request, text: str) -> Any:
    request.session["user_note"] = text
    request.session.flash(text, "notes")
    return request.session.peek_flash("notes")


@socket_event("relogin")
def relogin(request: Request) -> Any:
    remember(request, "mallory")  # a stale handler of an ended session tries to sign in
    return request.authenticated_userid


@socket_event("shout", namespace="/chat")
def shout(request: Request, text: str) -> str:
    return f"{request.authenticated_userid}: {text.upper()} on {request.namespace}"


@socket_event("connect", namespace="/chat")
def chat_connect(request: Request, auth: Any) -> bool:
    return request.authenticated_userid is not None


def build(**settings: Any) -> WsgiSessionApp:
    settings = {"session.secret": SECRET, "session.type": "memory", "greeting": "hello",
                "wsgisession.sweep_interval": "0", **settings}
    with Configurator(settings=settings) as config:
        config.include("wsgisession.pyramid")
        config.set_security_policy(SecurityPolicy())
        for name, pattern in (("login", "/login/{name}"), ("logout", "/logout"), ("show", "/"),
                              ("set", "/set/{key}/{value}"), ("attrs", "/attrs")):
            config.add_route(name, pattern)
        config.scan("tests.pyramid_lab")
        return make_wsgi_app(config)
