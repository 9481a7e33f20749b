"""The WSGI side: a drop-in for ``beaker.middleware.SessionMiddleware``.

    app = SessionMiddleware(app, manager=manager, cookie=cookie)

Each request gets ``environ['beaker.session']`` (and ``environ['wsgisession.session']``),
a :class:`~wsgisession.session.SharedSession` that loads lazily on first use,
and ``environ['beaker.get_session']``, Beaker's maker of a new session outside
the request's. The cookie is parsed tolerantly and its signature checked; a
missing, tampered or unknown cookie gives a fresh session (and never adopts the
id the client sent). As in Beaker, the session is saved when the app starts its
response (so the cookie can be set): what ``save()`` asked for, or with autosave
what changed; again when the body is closed, if changed or saved meanwhile. A
view that raises before it starts a response stores nothing.

What the app does not catch is answered plainly, never as the app's bug: a
store that is down, or a session lock not had within ``lock_timeout`` (another
process holds it, or died holding it), is ``503 Service Unavailable`` with
``Retry-After``; a session that ended while the request used it (a logout
elsewhere, a store expiry inside ``atomic()``) is ``409 Conflict`` with the cookie
removed, so the next request starts afresh.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from .cookies import SessionCookie
from .errors import BadSignature, LockTimeout, NoCookie, SessionEnded, StoreUnavailable
from .manager import SessionManager
from .session import SharedSession

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)
security_log = logging.getLogger("wsgisession.security")

ENVIRON_KEY = "beaker.session"


def session_for_request(
    environ: WSGIEnvironment, manager: SessionManager, cookie: SessionCookie,
    session_class: type[SharedSession] = SharedSession,
) -> tuple[SharedSession, str | None]:
    """The (lazy) session of a request and the verified id its cookie held."""
    try:
        cookie_id: str | None = cookie.read(environ)
    except NoCookie:
        cookie_id = None
    except BadSignature as exc:
        security_log.warning("tampered session cookie from %s: %s", environ.get("REMOTE_ADDR", "?"), exc)
        cookie_id = None
    if cookie_id is None:
        session = session_class(manager, None, is_new=True)  # not .new(): a framework's `new` is an attribute
    else:
        session = session_class(manager, cookie_id, is_new=False)
    session.defer_save = True  # save() asks for a save when the response starts, as Beaker's
    session.cookie_attributes = cookie.attributes
    return session, cookie_id


class SessionMiddleware:
    """Gives every request the shared session; saves it; sets the cookie."""

    def __init__(
        self, app: WSGIApplication, *, manager: SessionManager, cookie: SessionCookie, environ_key: str = ENVIRON_KEY,
        session_class: type[SharedSession] = SharedSession,
    ) -> None:
        self.app = app
        self.manager = manager
        self.cookie = cookie
        self.environ_key = environ_key
        #: the class of the sessions handed to the app (a framework integration's subclass)
        self.session_class = session_class

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        session, cookie_id = session_for_request(environ, self.manager, self.cookie, self.session_class)
        environ[self.environ_key] = session
        environ["wsgisession.session"] = session
        environ["wsgisession.manager"] = self.manager
        environ["beaker.get_session"] = self.get_session
        headers_sent = False

        def session_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal headers_sent
            if session.accessed_now:  # (not accessed(): a framework's `accessed` is an attribute)
                if exc_info is None:
                    self._finish(session)
                headers = list(headers) + self._headers(session, cookie_id)
            headers_sent = True
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, session_start_response)
        except (StoreUnavailable, LockTimeout) as exc:
            if headers_sent:
                raise
            return self._unavailable(exc, start_response)
        except SessionEnded as exc:
            if headers_sent:
                raise
            log.warning("request of session %s answered 409: %s", self.manager.fingerprint(session.id), exc)
            return self._ended(exc, start_response, cookie_id)
        return ClosingBody(body, lambda: self._finish(session, closing=True))

    def get_session(self) -> SharedSession:
        """``environ['beaker.get_session']()``: a new session, not the request's; its ``save()`` writes at once."""
        session = self.session_class(self.manager, None, is_new=True)
        session.cookie_attributes = self.cookie.attributes
        return session

    def _finish(self, session: SharedSession, *, closing: bool = False) -> None:
        """Save what ``save()`` asked for, or (autosave) what changed; a due touch otherwise.

        A session that ended meanwhile (a logout elsewhere) raises SessionEnded
        for an asked-for save while the response can still say so (409); an
        autosave of it is only logged.
        """
        requested = session.save_requested
        try:
            session.finish(self.manager.autosave)
        except SessionEnded as exc:
            if requested and not closing:
                raise
            log.warning("changes to session %s not saved: %s", self.manager.fingerprint(session.id), exc)

    def _headers(self, session: SharedSession, cookie_id: str | None) -> list[tuple[str, str]]:
        headers = [("Vary", "Cookie")]
        cookie = self.cookie
        attributes = session.cookie_attributes
        # A cookie whose session was gone already (rotated away at a login, logged out, expired) is left
        # alone until something is saved: this request may be answered after the response that set the
        # new cookie (a page's image, another tab), and the browser applies the last header it gets.
        if session.ended or (session.is_new and cookie_id is not None and not session.replaced_gone):
            if cookie_id is not None or session.ended == "logout":  # Beaker: delete() always sends one
                headers.append(cookie.delete_header(attributes))
        elif not session.is_new and (session.id != cookie_id or attributes.max_age or session.cookie_changed):
            headers.append(cookie.set_header(session.id, attributes))
        return headers

    def _unavailable(self, exc: StoreUnavailable | LockTimeout, start_response: StartResponse) -> list[bytes]:
        return _plain(start_response, *plain_answer(exc))

    def _ended(self, exc: SessionEnded, start_response: StartResponse, cookie_id: str | None) -> list[bytes]:
        status, headers, body = plain_answer(exc)
        return _plain(start_response, status, headers + ([self.cookie.delete_header()] if cookie_id is not None else []),
                      body)


class ClosingBody:
    """The app's body, and ``then`` run when the server closes it (after the body's own ``close()``).

    Werkzeug's ``ClosingIterator`` does the same with a Python call per chunk and
    typing subscripts built per request: 12k machine instructions, 6% of a request
    that reads the session, in process (2026-12-03). This hands the server the
    body's own iterator. ``then`` runs even if the body's ``close()`` raises (with
    ``ClosingIterator`` the save was lost then).
    """

    __slots__ = ("_body", "_then")

    def __init__(self, body: Iterable[bytes], then: Callable[[], None]) -> None:
        self._body = body
        self._then = then

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        try:
            if close is not None:
                close()
        finally:
            self._then()


def plain_answer(exc: StoreUnavailable | LockTimeout | SessionEnded) -> tuple[str, list[tuple[str, str]], bytes]:
    """The plain answer to what the app did not catch: ``(status, headers, body)``.

    503 with ``Retry-After`` for a store that is down or a lock not had in time;
    409 for a session that ended while the request used it (the caller removes the cookie).
    """
    if isinstance(exc, SessionEnded):
        body = f"409 Conflict: the session ended while this request used it ({exc.reason}); nothing was saved.\n"
        return "409 Conflict", [("Vary", "Cookie")], body.encode()
    if isinstance(exc, LockTimeout):
        return ("503 Service Unavailable", [("Retry-After", "5")],
                b"503 Service Unavailable: the session is busy (its lock was not free in time); try again.\n")
    return ("503 Service Unavailable", [("Retry-After", "5")],
            b"503 Service Unavailable: the session store is unavailable; try again shortly.\n")


def _plain(start_response: StartResponse, status: str, headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *headers])
    return [body]
