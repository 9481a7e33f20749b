"""The cookie exchange: a session made or rotated over a socket reaches the browser's cookie.

A socket handler cannot set a cookie: the session cookie is ``HttpOnly``, and
the socket's handshake is long over. So when a handler rotates its session
(``session.regenerate_id()``, a login over the socket) or an anonymous socket
starts one (:meth:`~wsgisession.realtime.SessionSockets.start_session`), the
server sends that socket a ``session_cookie`` event carrying a token, and the
page trades the token for the cookie with a same-origin ``POST``::

    <script src="/wsgisession/client.js"></script>
    <script>
      const socket = io();
      wsgisession.keepCookie(socket);   // exchanges every session_cookie token
    </script>

The token is 256 random bits, good once, for ``ttl`` seconds (30 by default),
and only from a page of this server's own origin. The store keeps a hash of
it (never the token) next to the sessions, so a token issued by one worker is
redeemed by any other; on Redis the record expires with the token, elsewhere a
stale one is refused when presented. The token names the new session only
inside the store: the page's script never sees a session id.

The endpoint answers ``204`` with the ``Set-Cookie`` header, or a JSON body
``{"error": REASON}`` with ``403`` (``bad_origin``), ``405`` (not a ``POST``),
``400`` (``bad_token``: malformed, unknown or used; ``expired_token``) or ``410``
(``unknown_session``: the session ended before the exchange).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from typing import TYPE_CHECKING, Any, Iterable

import orjson
from werkzeug.wrappers import Request, Response

from .ids import is_session_id
from .errors import CookieExchangeRefused, StoreUnavailable
from .origins import is_same_origin_request

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .cookies import SessionCookie
    from .manager import SessionManager

log = logging.getLogger(__name__)
security_log = logging.getLogger("wsgisession.security")

CLIENT_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "client.js")
EVENT = "session_cookie"

#: a token exchange request is a small JSON object: anything larger is refused unread
_MAX_BODY = 1024


def _record_id(token: str) -> str:
    """The store id of a token's record: a hash of the token, shaped like a session id (43 characters)."""
    digest = hashlib.sha256(b"wsgisession.cookie-exchange:" + token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class CookieExchange:
    """Issues single-use tokens for socket-made sessions and trades them for the session cookie."""

    def __init__(
        self,
        *,
        manager: SessionManager,
        cookie: SessionCookie,
        path: str = "/wsgisession/cookie",
        client_path: str = "/wsgisession/client.js",
        ttl: int = 30,
    ) -> None:
        self.manager = manager
        self.cookie = cookie
        self.path = path
        self.client_path = client_path
        self.ttl = ttl

    # -- tokens ----------------------------------------------------------
    def issue(self, session_id: str) -> str:
        """A new token that names ``session_id`` once, for ``ttl`` seconds."""
        token = secrets.token_urlsafe(32)
        text = orjson.dumps({"session": session_id, "expires": self.manager.clock() + self.ttl}).decode()
        self.manager.store.write(_record_id(token), text, ttl=self.ttl)
        return token

    def redeem(self, token: object) -> str:
        """The session id a token names; the token is used up. Raises :class:`CookieExchangeRefused`."""
        if not is_session_id(token):  # the same shape as our ids: 43 URL-safe characters
            raise CookieExchangeRefused("the token is malformed", reason="bad_token")
        assert isinstance(token, str)
        key = _record_id(token)
        store = self.manager.store
        with store.transaction(key) as txn:  # two exchanges of one token: the second finds nothing
            text = txn.text
            if text is not None:
                txn.remove()
        if text is None:
            raise CookieExchangeRefused("the token is unknown or was used already", reason="bad_token")
        try:
            record = orjson.loads(text)
            session_id, expires = str(record["session"]), float(record["expires"])
        except (ValueError, KeyError, TypeError):
            raise CookieExchangeRefused("the token's record is unreadable", reason="bad_token") from None
        if self.manager.clock() > expires:
            raise CookieExchangeRefused("the token expired", reason="expired_token")
        if not is_session_id(session_id) or self.manager.read(session_id) is None:
            raise CookieExchangeRefused("the session ended before the exchange", reason="unknown_session", status=410)
        return session_id

    # -- WSGI ------------------------------------------------------------
    def url(self, environ: WSGIEnvironment) -> str:
        """The endpoint's path as a page of the app (mounted under ``SCRIPT_NAME``) addresses it."""
        return str(environ.get("SCRIPT_NAME", "")).rstrip("/") + self.path

    def wrap(self, app: WSGIApplication) -> WSGIApplication:
        """``app`` with this exchange's two paths (the endpoint and the client script) in front."""
        paths = (self.path, self.client_path)

        def routed(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            if environ.get("PATH_INFO") in paths:
                return self(environ, start_response)
            return app(environ, start_response)

        return routed

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == self.client_path:
            response = self._client(Request(environ))
        else:
            response = self._exchange(environ)
        return response(environ, start_response)

    def _client(self, request: Request) -> Response:
        with open(CLIENT_JS, "rb") as fh:
            response = Response(fh.read(), mimetype="text/javascript")
        response.headers["Cache-Control"] = "no-cache"
        return response.make_conditional(request)

    def _exchange(self, environ: WSGIEnvironment) -> Response:
        try:
            session_id = self._redeem_request(environ)
        except CookieExchangeRefused as exc:
            logger = security_log if exc.reason in ("bad_origin", "bad_token") else log
            logger.warning("refused a cookie exchange: %s (%s)", exc.reason, environ.get("REMOTE_ADDR"))
            return _answer(exc.status, {"error": exc.reason})
        except StoreUnavailable:
            return _answer(503, {"error": "store_unavailable"}, retry_after=True)
        log.info("cookie exchange: session %s reached the browser", self.manager.fingerprint(session_id))
        response = _answer(204, None)
        response.headers.add(*self.cookie.set_header(session_id))
        return response

    def _redeem_request(self, environ: WSGIEnvironment) -> str:
        if environ.get("REQUEST_METHOD") != "POST":
            raise CookieExchangeRefused("the exchange takes POST", reason="bad_method", status=405)
        if not is_same_origin_request(environ):
            raise CookieExchangeRefused("not a request of a same-origin page", reason="bad_origin", status=403)
        request = Request(environ)
        request.max_content_length = _MAX_BODY
        try:
            body: Any = orjson.loads(request.get_data(cache=False))
        except Exception:  # too large (RequestEntityTooLarge), or not JSON
            raise CookieExchangeRefused("the body is not a small JSON object", reason="bad_token") from None
        return self.redeem(body.get("token") if isinstance(body, dict) else None)


def _answer(status: int, body: dict[str, str] | None, *, retry_after: bool = False) -> Response:
    response = Response(
        b"" if body is None else orjson.dumps(body), status=status,
        mimetype=None if body is None else "application/json",
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Cookie"
    if status == 405:
        response.headers["Allow"] = "POST"
    if retry_after:
        response.headers["Retry-After"] = "5"
    return response
