"""The session cookie: tolerant parsing, signature check, id format check.

The cookie's value is ``<id>.<signature>``: the id (:mod:`wsgisession.ids`),
and an HMAC-SHA256 signature made by itsdangerous with the application's
secret. Only ids this server issued and signed are accepted, and an id is
format-checked before anything builds a store key or a path from it.

    >>> cookie = SessionCookie(secret="abcdefgh" * 4)
    >>> cookie.unsign(cookie.sign("A" * 43)) == "A" * 43
    True
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal, Sequence

import itsdangerous
from werkzeug.http import dump_cookie, parse_cookie

from .errors import BadSignature, ConfigurationError, NoCookie
from .ids import check_secret, is_session_id

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

SameSite = Literal["Lax", "Strict", "None"]


class SessionCookie:
    """Reads, signs and writes the session cookie."""

    def __init__(
        self,
        *,
        secret: str | Sequence[str],
        name: str = "beaker.session.id",
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = True,
        samesite: SameSite | None = "Lax",
        max_age: int | None = None,
    ) -> None:
        keys = check_secret(secret)
        if samesite == "None" and not secure:
            raise ConfigurationError(
                "samesite=None needs secure=true: browsers drop such cookies otherwise",
                key="samesite",
                value=samesite,
            )
        self._signer = itsdangerous.Signer(keys, salt="wsgisession.cookie", digest_method=hashlib.sha256)
        self.name = name
        self.path = path
        self.domain = domain
        self.secure = secure
        self.httponly = httponly
        self.samesite = samesite
        self.max_age = max_age

    def sign(self, session_id: str) -> str:
        """Return the cookie value for ``session_id``."""
        return self._signer.sign(session_id).decode("ascii")

    def unsign(self, value: str) -> str:
        """Return the id inside a cookie value, or raise :class:`BadSignature`."""
        try:
            session_id = self._signer.unsign(value).decode("ascii")
        except (itsdangerous.BadSignature, UnicodeError) as exc:
            raise BadSignature("the session cookie's signature does not match") from exc
        if not is_session_id(session_id):
            raise BadSignature("the session cookie holds a malformed id")
        return session_id

    def read(self, environ: WSGIEnvironment) -> str:
        """Return the verified session id of a request.

        Parsing is Werkzeug's, which skips a malformed unrelated cookie instead
        of dropping the whole header. Raises :class:`NoCookie` or
        :class:`BadSignature`.
        """
        raw = str(environ.get("HTTP_COOKIE", ""))
        # WSGI headers are latin-1 text; bytes that are not UTF-8 must not break parsing
        raw = raw.encode("latin-1", "replace").decode("utf-8", "replace").encode("utf-8").decode("latin-1")
        values = parse_cookie(raw).getlist(self.name)
        if not values:
            raise NoCookie("the request carries no session cookie")
        error: BadSignature | None = None
        for value in values:  # a stale duplicate from another path must not win
            try:
                return self.unsign(value)
            except BadSignature as exc:
                error = exc
        assert error is not None
        raise error

    def set_header(self, session_id: str) -> tuple[str, str]:
        """The ``Set-Cookie`` header that hands ``session_id`` to the client."""
        value = dump_cookie(
            self.name,
            self.sign(session_id),
            max_age=self.max_age,
            path=self.path,
            domain=self.domain,
            secure=self.secure,
            httponly=self.httponly,
            samesite=self.samesite,
        )
        return ("Set-Cookie", value)

    def delete_header(self) -> tuple[str, str]:
        """The ``Set-Cookie`` header that removes the cookie (same path and domain)."""
        value = dump_cookie(
            self.name,
            "",
            max_age=0,
            expires=0,
            path=self.path,
            domain=self.domain,
            secure=self.secure,
            httponly=self.httponly,
            samesite=self.samesite,
        )
        return ("Set-Cookie", value)
