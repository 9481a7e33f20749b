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

import dataclasses
import hashlib
import http.cookies
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal, Sequence, Union

import itsdangerous
from werkzeug.http import parse_cookie

from .errors import BadSignature, ConfigurationError, NoCookie
from .ids import check_secret, is_session_id

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

SameSite = Literal["Lax", "Strict", "None"]
#: Beaker's ``cookie_expires``: ``True`` a browser-session cookie, ``False`` never
#: (2038), seconds or a ``timedelta`` from when the cookie is sent, or a date
Expires = Union[bool, int, timedelta, datetime]

_NEVER = datetime.fromtimestamp(0x7FFFFFFF, timezone.utc)  # Beaker's "never": the last 32-bit second
_EPOCH = datetime.fromtimestamp(0, timezone.utc)
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def cookie_date(when: datetime) -> str:
    """A date as Beaker writes a cookie's ``expires`` (``Wed, 22-May-2019 00:00:00 GMT``), in any locale."""
    utc = when.astimezone(timezone.utc) if when.tzinfo is not None else when
    return (f"{_WEEKDAYS[utc.weekday()]}, {utc.day:02d}-{_MONTHS[utc.month - 1]}-{utc.year:04d} "
            f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} GMT")


@dataclasses.dataclass(frozen=True, slots=True)
class CookieAttributes:
    """What a ``Set-Cookie`` of the session says besides the value (checked when made)."""

    path: str = "/"
    domain: str | None = None
    secure: bool = False
    httponly: bool = True
    samesite: SameSite | None = "Lax"
    expires: Expires = True
    max_age: int | None = None

    def __post_init__(self) -> None:
        _check(self)

    def replace(self, **changes: object) -> CookieAttributes:
        """A copy with ``changes`` (checked: ConfigurationError names the attribute)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def expiry(self, now: datetime | None = None) -> datetime | None:
        """When a cookie sent ``now`` expires; ``None`` for a browser-session cookie."""
        expires = self.expires
        if expires is True:
            return None
        if expires is False:
            return _NEVER
        if isinstance(expires, datetime):
            return expires
        delta = expires if isinstance(expires, timedelta) else timedelta(seconds=expires)
        return (now or datetime.now(timezone.utc)) + delta


def _check(attributes: CookieAttributes) -> None:
    def fail(name: str, value: object, expected: str) -> None:
        raise ConfigurationError(f"cookie {name} = {value!r}: expected {expected}", key=name, value=value)

    if not isinstance(attributes.path, str) or not attributes.path.startswith("/"):
        fail("path", attributes.path, "a path starting with /")
    if attributes.domain is not None and (not isinstance(attributes.domain, str) or not attributes.domain.strip(".")
                                          or any(c in attributes.domain for c in "; ,\t")):
        fail("domain", attributes.domain, "a host name (Beaker's leading dot is kept) or None")
    for name in ("secure", "httponly"):
        if not isinstance(getattr(attributes, name), bool):
            fail(name, getattr(attributes, name), "true or false")
    if attributes.samesite not in ("Lax", "Strict", "None", None):
        fail("samesite", attributes.samesite, "Lax, Strict, None (the string) or no SameSite (None)")
    if attributes.samesite == "None" and not attributes.secure:
        raise ConfigurationError("samesite=None needs secure=true: browsers drop such cookies otherwise",
                                 key="samesite", value=attributes.samesite)
    expires = attributes.expires
    if not isinstance(expires, (bool, int, timedelta, datetime)) or (
        not isinstance(expires, bool) and isinstance(expires, int) and expires < 0
    ):
        fail("cookie_expires", expires, "true (a browser-session cookie), false (never), seconds, a timedelta or "
                                        "a datetime")
    if attributes.max_age is not None and (isinstance(attributes.max_age, bool)
                                           or not isinstance(attributes.max_age, int) or attributes.max_age < 0):
        fail("max_age", attributes.max_age, "seconds (0 or more) or None")


_UNSEEN = "\x00unseen"  # never a session id (a str: the kept headers' values are str or None)

#: verified Cookie headers kept (each up to VERIFIED_HEADER_MAX characters), see SessionCookie.read
VERIFIED_HEADERS = 2048
VERIFIED_HEADER_MAX = 2048


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
        expires: Expires = True,
    ) -> None:
        keys = check_secret(secret)
        self._signer = itsdangerous.Signer(keys, salt="wsgisession.cookie", digest_method=hashlib.sha256)
        self.name = name
        #: the attributes of every session's cookie, unless a session changes its own (``session.domain = ...``)
        self.attributes = CookieAttributes(path=path, domain=domain, secure=secure, httponly=httponly,
                                           samesite=samesite, expires=expires, max_age=max_age)
        self._verified: dict[str, str | None] = {}  # a whole Cookie header -> the verified id it holds, None: none

    @property
    def path(self) -> str:
        return self.attributes.path

    @property
    def domain(self) -> str | None:
        return self.attributes.domain

    @property
    def secure(self) -> bool:
        return self.attributes.secure

    @property
    def httponly(self) -> bool:
        return self.attributes.httponly

    @property
    def samesite(self) -> SameSite | None:
        return self.attributes.samesite

    @property
    def max_age(self) -> int | None:
        return self.attributes.max_age

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
        header = environ.get("HTTP_COOKIE", "")
        # Speed: a browser sends the same Cookie header on every request, and the same header
        # always verifies to the same id: parsing and the HMAC check (~9 us of ~30 per request
        # that reads the session, in process, 2026-12-03) are done once per header. Only
        # verified headers are kept, a bounded number of them, and headers without our
        # cookie (an anonymous visitor's: none, or only other sites' cookies), parsed
        # every time before: 13k instructions per such request (in process, 2026-12-03).
        # A header whose signature fails is checked (and logged) every time.
        verified = self._verified.get(header, _UNSEEN)
        if verified is not _UNSEEN:
            if verified is None:
                raise NoCookie("the request carries no session cookie")
            return verified
        try:
            session_id: str | None = self._verify(str(header))
        except NoCookie:
            session_id = None
        if len(header) <= VERIFIED_HEADER_MAX:
            if len(self._verified) >= VERIFIED_HEADERS:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[header] = session_id
        if session_id is None:
            raise NoCookie("the request carries no session cookie")
        return session_id

    def _verify(self, raw: str) -> str:
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

    def set_header(self, session_id: str, attributes: CookieAttributes | None = None) -> tuple[str, str]:
        """The ``Set-Cookie`` header that hands ``session_id`` to the client (``attributes``: a session's own)."""
        attributes = attributes or self.attributes
        return ("Set-Cookie", self._dump(self.sign(session_id), attributes, attributes.expiry(), attributes.max_age))

    def delete_header(self, attributes: CookieAttributes | None = None) -> tuple[str, str]:
        """The ``Set-Cookie`` header that removes the cookie (same path and domain)."""
        return ("Set-Cookie", self._dump("", attributes or self.attributes, _EPOCH, 0))

    def _dump(self, value: str, attributes: CookieAttributes, expiry: datetime | None, max_age: int | None) -> str:
        """Beaker's spelling (the standard library's ``Morsel``): ``Domain`` as given, leading dot kept; ``expires``."""
        morsel: http.cookies.Morsel[str] = http.cookies.Morsel()
        morsel.set(self.name, value, value)  # the signed id needs no quoting: base64url and "."
        morsel["path"] = attributes.path
        if attributes.domain:
            morsel["domain"] = attributes.domain
        if expiry is not None:
            morsel["expires"] = cookie_date(expiry)
        if max_age is not None:
            morsel["max-age"] = str(max_age)
        morsel["secure"] = attributes.secure
        morsel["httponly"] = attributes.httponly
        if attributes.samesite:
            morsel["samesite"] = attributes.samesite
        return morsel.OutputString()
