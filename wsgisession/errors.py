"""The exceptions of wsgisession: one root, one level of kinds, data on every instance.

Every exception the library raises on purpose derives from
:class:`WsgiSessionError`, so ``except WsgiSessionError`` catches them all, and
every instance carries ``reason``: a stable string that also travels to
Socket.IO clients (the ``connect_error`` message, an acknowledgement's
``error``)::

    WsgiSessionError
    ├── ConfigurationError        reason "configuration"; key, value
    ├── SessionRefused            a socket's session cannot be joined
    │   ├── NoCookie              "no_cookie"
    │   ├── BadSignature          "bad_signature"
    │   ├── UnknownSession        "unknown_session"
    │   └── BadOrigin             "bad_origin"
    ├── SessionEnded              "logout" or "expired": a save would bring it back
    │   └── SessionExpired        "expired"
    ├── StoreUnavailable          "store_unavailable"; backend
    ├── LockTimeout               "lock_timeout"; timeout
    ├── SessionValueError         "unjsonable"; key
    ├── MessageTooBig             "message_too_big"; size, limit
    └── CookieExchangeRefused     "bad_origin", "bad_token", ...; status

A refused socket connection carries the ``reason`` of a :class:`SessionRefused`,
:class:`SessionExpired` or :class:`StoreUnavailable`.
"""
from __future__ import annotations


class WsgiSessionError(Exception):
    """Root of every error raised by wsgisession.

    :ivar reason: a stable, short string naming what went wrong.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigurationError(WsgiSessionError):
    """The library was configured in a way it refuses to run with.

    :ivar key: the option (INI key or keyword argument) that is wrong.
    :ivar value: the value that was given, or ``None`` when it is missing.
    """

    def __init__(self, message: str, *, key: str | None = None, value: object = None) -> None:
        super().__init__(message, reason="configuration")
        self.key = key
        self.value = value


class SessionRefused(WsgiSessionError):
    """A client's session could not be joined (its subclasses say why)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, reason=reason)


class NoCookie(SessionRefused):
    """The request carries no session cookie."""

    def __init__(self, message: str = "the request carries no session cookie") -> None:
        super().__init__(message, reason="no_cookie")


class BadSignature(SessionRefused):
    """The session cookie's signature or id format is invalid (tampering)."""

    def __init__(self, message: str = "the session cookie's signature does not match") -> None:
        super().__init__(message, reason="bad_signature")


class UnknownSession(SessionRefused):
    """The cookie is validly signed but the store holds no such session."""

    def __init__(self, message: str = "no such session") -> None:
        super().__init__(message, reason="unknown_session")


class BadOrigin(SessionRefused):
    """The handshake's Origin is not allowed (or missing where required)."""

    def __init__(self, message: str = "the origin is not allowed") -> None:
        super().__init__(message, reason="bad_origin")


class SessionEnded(WsgiSessionError):
    """The session was deleted, invalidated, rotated or expired meanwhile.

    Raised by a save that would otherwise bring an ended session back;
    ``reason`` is ``logout`` (deleted, here or elsewhere) or ``expired``.
    """

    def __init__(self, message: str, *, reason: str = "logout") -> None:
        super().__init__(message, reason=reason)


class SessionExpired(SessionEnded):
    """The session passed its idle or absolute timeout."""

    def __init__(self, message: str = "session expired") -> None:
        super().__init__(message, reason="expired")


class StoreUnavailable(WsgiSessionError):
    """The session store cannot be reached (connection refused, I/O error).

    :ivar backend: the backend's type name.
    """

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message, reason="store_unavailable")
        self.backend = backend


class LockTimeout(WsgiSessionError):
    """A session lock could not be acquired within the configured timeout.

    :ivar timeout: the number of seconds waited.
    """

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message, reason="lock_timeout")
        self.timeout = timeout


class SessionValueError(WsgiSessionError):
    """A session value cannot be stored as JSON; nothing was written.

    :ivar key: the top-level session key holding the bad value.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message, reason="unjsonable")
        self.key = key


class MessageTooBig(WsgiSessionError):
    """A websocket message or HTTP body is larger than the limit.

    :ivar size: the size the client declared (so far, for a fragmented message).
    :ivar limit: the largest size accepted.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message too big: {size} bytes, the limit is {limit} bytes", reason="message_too_big")
        self.size = size
        self.limit = limit


class CookieExchangeRefused(WsgiSessionError):
    """A cookie exchange (a socket-made session handed to the browser's cookie) was refused.

    ``reason``: ``bad_origin`` (not a same-origin request), ``bad_method``,
    ``bad_token`` (malformed, unknown or already used), ``expired_token``, or
    ``unknown_session`` (the session ended before the exchange).

    :ivar status: the HTTP status the exchange endpoint answers with.
    """

    def __init__(self, message: str, *, reason: str, status: int = 400) -> None:
        super().__init__(message, reason=reason)
        self.status = status
