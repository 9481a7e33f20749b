"""The exceptions of wsgisession: one root, specific subclasses carrying data.

Every exception the library raises on purpose derives from
:class:`WsgiSessionError`, so ``except WsgiSessionError`` catches them all.
Refusal reasons are stable strings (``reason``) that also travel to Socket.IO
clients in their ``connect_error`` payload.
"""
from __future__ import annotations


class WsgiSessionError(Exception):
    """Root of every error raised by wsgisession."""


class ConfigurationError(WsgiSessionError, ValueError):
    """The library was configured in a way it refuses to run with.

    :ivar key: the option (INI key or keyword argument) that is wrong.
    :ivar value: the value that was given, or ``None`` when it is missing.
    """

    def __init__(self, message: str, *, key: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


class SessionRefused(WsgiSessionError):
    """A client's session could not be joined.

    :ivar reason: one of ``no_cookie``, ``bad_signature``, ``unknown_session``,
        ``expired``, ``store_unavailable``, ``bad_origin``.
    """

    reason: str = "refused"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.reason)


class NoCookie(SessionRefused):
    """The request carries no session cookie."""

    reason = "no_cookie"


class BadSignature(SessionRefused):
    """The session cookie's signature or id format is invalid (tampering)."""

    reason = "bad_signature"


class UnknownSession(SessionRefused):
    """The cookie is validly signed but the store holds no such session."""

    reason = "unknown_session"


class BadOrigin(SessionRefused):
    """The handshake's Origin is not allowed (or missing where required)."""

    reason = "bad_origin"


class SessionEnded(WsgiSessionError):
    """The session was deleted, invalidated, rotated or expired meanwhile.

    Raised by a save that would otherwise bring an ended session back.

    :ivar reason: ``logout`` (deleted, here or elsewhere) or ``expired``.
    """

    def __init__(self, message: str, *, reason: str = "logout") -> None:
        super().__init__(message)
        self.reason = reason


class SessionExpired(SessionEnded, SessionRefused):
    """The session passed its idle or absolute timeout."""

    reason = "expired"

    def __init__(self, message: str = "session expired") -> None:
        SessionEnded.__init__(self, message, reason="expired")


class StoreUnavailable(SessionRefused):
    """The session store cannot be reached (connection refused, I/O error).

    :ivar backend: the backend's type name.
    """

    reason = "store_unavailable"

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


class LockTimeout(WsgiSessionError):
    """A session lock could not be acquired within the configured timeout.

    :ivar timeout: the number of seconds waited.
    """

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout


class SessionValueError(WsgiSessionError, TypeError):
    """A session value cannot be stored as JSON; nothing was written.

    :ivar key: the top-level session key holding the bad value.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class CookieExchangeRefused(WsgiSessionError):
    """A cookie exchange (a socket-made session handed to the browser's cookie) was refused.

    :ivar reason: ``bad_origin`` (not a same-origin request), ``bad_token``
        (malformed, unknown or already used), ``expired_token``, or
        ``unknown_session`` (the session ended before the exchange).
    :ivar status: the HTTP status the exchange endpoint answers with.
    """

    def __init__(self, message: str, *, reason: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class MessageTooBig(WsgiSessionError):
    """A websocket message or HTTP body is larger than the limit.

    :ivar size: the size the client declared (so far, for a fragmented message).
    :ivar limit: the largest size accepted.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message too big: {size} bytes, the limit is {limit} bytes")
        self.size = size
        self.limit = limit
