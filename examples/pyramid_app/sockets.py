"""The example's socket handlers: ``handler(request, *args)``, found by ``config.scan()``.

Each gets a Pyramid request for its socket: ``request.session`` is the session
as stored when the event arrives (saved when the handler returns), and the
app's security policy answers ``request.authenticated_userid``.
"""
from __future__ import annotations

from typing import Any

from pyramid.request import Request

from wsgisession.pyramid import socket_event


@socket_event("connect")
def connect(request: Request, auth: Any) -> bool:
    return request.authenticated_userid is not None  # refuse an anonymous visitor's socket


@socket_event("whoami")
def whoami(request: Request) -> str | None:
    return request.authenticated_userid  # remembered by the /login view


@socket_event("incr")
def incr(request: Request) -> int:
    with request.session.atomic():  # the same counter as POST /incr
        n = request.session["n"] = request.session.get("n", 0) + 1
    request.wsgisession.emit_to_session(request.session.id, "count", n)
    return int(n)
