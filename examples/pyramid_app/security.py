"""The example's security policy: the user id lives in the shared session.

It is Pyramid's documented session-based policy, with wsgisession's
``SessionAuthenticationHelper``: ``remember()`` at login gives the session a new
id, ``forget()`` at logout ends it, and every socket of it with it.
"""
from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.security import Allowed, Denied

from wsgisession.pyramid import SessionAuthenticationHelper

USERS = {"ann": "ann-password", "bob": "bob-password"}  # a demo's user store


class SecurityPolicy:
    def __init__(self) -> None:
        self.helper = SessionAuthenticationHelper()

    def identity(self, request: Request) -> dict[str, str] | None:
        userid = self.helper.authenticated_userid(request)
        return {"name": userid} if userid in USERS else None

    def authenticated_userid(self, request: Request) -> str | None:
        identity = request.identity
        return identity["name"] if identity else None

    def permits(self, request: Request, context: Any, permission: str) -> Allowed | Denied:
        if request.identity is None:
            return Denied("not signed in")
        return Allowed("signed in")

    def remember(self, request: Request, userid: str, **kw: Any) -> list[Any]:
        return self.helper.remember(request, userid, **kw)

    def forget(self, request: Request, **kw: Any) -> list[Any]:
        return self.helper.forget(request, **kw)
