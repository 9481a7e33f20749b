"""Origin checks for Socket.IO handshakes, and CORS headers for allowed origins.

Same-origin by default: the handshake's ``Origin`` must equal the server's own
``scheme://host``. With ``allowed_origins`` set, only those origins are
accepted. ``*`` cannot be combined with cookie sessions.

Browsers do **not** always send ``Origin``: a same-origin ``GET`` is not a CORS
request, so the polling handshake of the official client's default transports
(``io()``: polling, then upgrade) arrives without one (measured in Chromium:
no ``Origin``, ``Sec-Fetch-Site: same-origin``). Every current browser sends the
Fetch Metadata header ``Sec-Fetch-Site``, which a page's script cannot set. So a
handshake without ``Origin`` is decided by it:

- ``Sec-Fetch-Site: same-origin``: a page of this server's own origin, judged as
  if it had sent that origin (accepted by default; under an allow-list only if the
  server's own origin is listed);
- ``same-site``, ``cross-site`` or ``none``: refused;
- neither header: browsers send Fetch Metadata only to potentially trustworthy
  origins (``https``, ``localhost``, ``127.0.0.1``), so a page on plain ``http``
  of any other host sends neither. Its ``Referer`` then decides (a page's script
  cannot make it name another origin): this server's own origin is judged as
  above, any other is refused. With none of the three it is not a browser (or a
  proxy strips them): refused if the handshake carries a cookie, unless
  ``allow_missing_origin``; without a cookie there is nothing to protect, and the
  session check refuses it (``no_cookie``) unless anonymous sockets are allowed.

Refusal happens in the Socket.IO connect step, before any session is loaded,
so the client's ``connect_error`` carries the reason ``bad_origin``. The
decision is made once per handshake and kept in the handshake's environ, so a
client that opens several namespaces is judged once.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable, Sequence
from urllib.parse import urlsplit

from .errors import BadOrigin, ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

security_log = logging.getLogger("wsgisession.security")

#: where :meth:`OriginPolicy.check` keeps its decision in the handshake's environ
VERDICT_KEY = "wsgisession.origin_refusal"


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _origin(scheme: str, host: str) -> str:
    """``scheme://host`` as a browser writes ``Origin``: without the scheme's default port.

    A proxy may pass ``Host: example.com:443``; the page's ``Origin`` is ``https://example.com``.
    """
    scheme = scheme.lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default is not None and host.endswith(default):
        host = host[: -len(default)]
    return f"{scheme}://{host}"


def own_origins(environ: WSGIEnvironment) -> set[str]:
    """The origins a same-origin page of this server would send."""
    origins = set()
    host = environ.get("HTTP_HOST")
    if host:
        origins.add(_origin(str(environ.get("wsgi.url_scheme", "http")), str(host)))
        if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
            scheme = str(environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme", "http"))
            fwd_host = str(environ.get("HTTP_X_FORWARDED_HOST") or host)
            origins.add(_origin(scheme.split(",")[0].strip(), fwd_host.split(",")[0].strip()))
    return origins


def referer_origin(referer: str) -> str | None:
    """The origin (``scheme://host[:port]``) of a ``Referer`` URL; ``None`` if it has none."""
    parts = urlsplit(referer)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def is_same_origin_request(environ: WSGIEnvironment) -> bool:
    """Whether a browser sent this request from a page of this server's own origin.

    ``Origin`` (which browsers send on every ``POST``) must be this server's own;
    without one, ``Sec-Fetch-Site`` must say ``same-origin``. A request with
    neither is not known to come from a same-origin page.
    """
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None:
        return origin in own_origins(environ)
    return environ.get("HTTP_SEC_FETCH_SITE") == "same-origin"


def is_cross_site_request(environ: WSGIEnvironment) -> bool:
    """Whether a browser says another site's page sent this request: the CSRF check of a JSON or curl route.

    ``Origin`` (sent by browsers on every ``POST``) is not this server's own, or
    ``Sec-Fetch-Site`` is neither ``same-origin`` nor ``none`` (typed into the
    address bar). A request with neither header is not a browser's (curl, a
    script): it cannot be a forged one, which rides on a browser's cookies.
    Behind a proxy, ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` count as this
    server's origin, as for handshakes. Forms should still carry a token.
    """
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None:
        return origin not in own_origins(environ)
    return environ.get("HTTP_SEC_FETCH_SITE", "same-origin") not in ("same-origin", "none")


class OriginPolicy:
    """Decides whether a handshake's Origin may join a session."""

    def __init__(self, *, allowed_origins: Sequence[str] | None = None, allow_missing_origin: bool = False) -> None:
        if allowed_origins is not None and "*" in allowed_origins:
            raise ConfigurationError(
                "allowed_origins '*' would let any web site use your users' sessions: "
                "list the origins (scheme://host[:port]) instead",
                key="allowed_origins",
                value="*",
            )
        self.allowed = None if allowed_origins is None else {o.rstrip("/") for o in allowed_origins}
        self.allow_missing = allow_missing_origin

    def allows(self, origin: str, environ: WSGIEnvironment) -> bool:
        if self.allowed is not None:
            return origin in self.allowed
        return origin in own_origins(environ)

    def allows_own_origin(self, environ: WSGIEnvironment) -> bool:
        """Whether a page of this server's own origin may connect."""
        if self.allowed is None:
            return True
        return not self.allowed.isdisjoint(own_origins(environ))

    def check(self, environ: WSGIEnvironment) -> None:
        """Raise :class:`BadOrigin` unless the handshake may join a session (decided once per handshake)."""
        verdict = environ.get(VERDICT_KEY)
        if verdict is None:
            verdict = environ[VERDICT_KEY] = self._verdict(environ)
        if verdict:
            raise BadOrigin(verdict)

    def _verdict(self, environ: WSGIEnvironment) -> str:
        """Why the handshake is refused; ``""`` if it is accepted."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            if self.allows(origin, environ):
                return ""
            security_log.warning("refused a handshake from origin %r (%s)", origin, environ.get("REMOTE_ADDR"))
            return f"origin {origin!r} is not allowed"
        fetch_site = environ.get("HTTP_SEC_FETCH_SITE")
        if fetch_site is not None:
            if fetch_site == "same-origin" and self.allows_own_origin(environ):
                return ""
            security_log.warning(
                "refused a handshake with no Origin and Sec-Fetch-Site %r (%s)", fetch_site, environ.get("REMOTE_ADDR")
            )
            if fetch_site == "same-origin":
                return "a same-origin handshake, and this server's own origin is not in allowed_origins"
            return f"the handshake has no Origin header and Sec-Fetch-Site is {fetch_site!r}, not 'same-origin'"
        referer = environ.get("HTTP_REFERER")
        if referer:
            page = referer_origin(str(referer))
            if page in own_origins(environ) and self.allows_own_origin(environ):
                return ""
            if page is None or not self.allows(page, environ):
                security_log.warning(
                    "refused a handshake with no Origin from a page of %r (%s)", page, environ.get("REMOTE_ADDR")
                )
                return f"the handshake has no Origin header and comes from a page of {page!r}"
            return ""
        if self.allow_missing or "HTTP_COOKIE" not in environ:
            return ""
        security_log.warning(
            "refused a cookie-bearing handshake with neither Origin nor Sec-Fetch-Site from %s", environ.get("REMOTE_ADDR")
        )
        return "the handshake has a cookie but neither an Origin, a Sec-Fetch-Site nor a Referer header"


class CorsHeaders:
    """Adds credentialed CORS headers for allowed cross-origin requests."""

    def __init__(self, app: WSGIApplication, *, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        if not origin or self.policy.allowed is None or not self.policy.allows(origin, environ):
            return self.app(environ, start_response)
        extra = [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Credentials", "true"),
            ("Vary", "Origin"),
        ]
        if environ["REQUEST_METHOD"] == "OPTIONS":
            extra += [("Access-Control-Allow-Methods", "OPTIONS, GET, POST")]
            if "HTTP_ACCESS_CONTROL_REQUEST_HEADERS" in environ:
                extra += [("Access-Control-Allow-Headers", environ["HTTP_ACCESS_CONTROL_REQUEST_HEADERS"])]
            start_response("204 No Content", extra)
            return []

        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> object:
            return start_response(status, headers + extra, exc_info)  # type: ignore[arg-type]

        return self.app(environ, with_cors)  # type: ignore[arg-type]
