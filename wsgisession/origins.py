"""Origin checks for Socket.IO handshakes, and CORS headers for allowed origins.

Same-origin by default: the handshake's ``Origin`` must equal the server's own
``scheme://host``. With ``allowed_origins`` set, only those origins are
accepted. A handshake that carries a cookie but no ``Origin`` is refused by
default (browsers always send one; a missing one means a non-browser client or
a proxy that strips it). ``*`` cannot be combined with cookie sessions.

Refusal happens in the Socket.IO connect step, before any session is loaded,
so the client's ``connect_error`` carries the reason ``bad_origin``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable, Sequence

from .errors import BadOrigin, ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

security_log = logging.getLogger("wsgisession.security")


def own_origins(environ: WSGIEnvironment) -> set[str]:
    """The origins a same-origin page of this server would send."""
    origins = set()
    host = environ.get("HTTP_HOST")
    if host:
        origins.add(f"{environ.get('wsgi.url_scheme', 'http')}://{host}")
        if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
            scheme = str(environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme", "http"))
            fwd_host = str(environ.get("HTTP_X_FORWARDED_HOST") or host)
            origins.add(f"{scheme.split(',')[0].strip()}://{fwd_host.split(',')[0].strip()}")
    return origins


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

    def check(self, environ: WSGIEnvironment) -> None:
        """Raise :class:`BadOrigin` unless the handshake's Origin is acceptable."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            if self.allow_missing or "HTTP_COOKIE" not in environ:
                return
            security_log.warning("refused a cookie-bearing handshake with no Origin from %s", environ.get("REMOTE_ADDR"))
            raise BadOrigin("the handshake has a cookie but no Origin header")
        if not self.allows(origin, environ):
            security_log.warning("refused a handshake from origin %r (%s)", origin, environ.get("REMOTE_ADDR"))
            raise BadOrigin(f"origin {origin!r} is not allowed")


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
