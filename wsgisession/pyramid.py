"""Pyramid: ``request.session`` is the shared session, in views and in socket handlers.

In the app's ``main``::

    from wsgisession.pyramid import make_wsgi_app

    def main(global_config, **settings):
        with Configurator(settings=settings) as config:
            config.include("wsgisession.pyramid")
            config.add_route("home", "/")
            config.scan()                         # views and @socket_event handlers
            return make_wsgi_app(config)          # instead of config.make_wsgi_app()

and in a module the scan finds::

    @socket_event("incr")
    def incr(request):
        request.session["n"] = request.session.get("n", 0) + 1   # saved (merged) when it returns
        return request.session["n"]                              # the acknowledgement

Settings come from the app's own INI section, as pyramid_beaker reads them
(``session.*`` and ``beaker.session.*``: ``secret``, ``type``, ``data_dir``,
``url``, ``timeout`` ...), plus ours (``wsgisession.*``, ``socketio.*``); an
unknown key under any of these prefixes is an error naming it, at
``config.include`` time. One session layer serves both sides:
:func:`make_wsgi_app` wraps Pyramid's router with :func:`wsgisession.make_app`,
whose middleware gives each request its session, and ``request.session`` is
that session, implementing Pyramid's ``ISession`` (``new``, ``created``,
``changed()``, ``invalidate()`` ending every socket of the session, ``flash`` /
``pop_flash`` / ``peek_flash``, and the CSRF token Pyramid's default CSRF
storage policy keeps in the session).

A socket handler gets a Pyramid request built from its socket's handshake,
with the app's registry and request methods (``request.authenticated_userid``
and ``request.identity`` ask the app's security policy), ``request.session``
the event's fresh session, ``request.sid`` the socket and
``request.wsgisession`` the composed app (``emit_to_session``,
``disconnect_session``). :class:`SessionAuthenticationHelper` is Pyramid's,
with the id rotated at ``remember()`` and the session ended at ``forget()``.
"""
from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import venusian
from pyramid.authentication import SessionAuthenticationHelper as _PyramidHelper
from pyramid.interfaces import ISession
from pyramid.request import Request, apply_request_extensions
from pyramid.response import Response
from pyramid.threadlocal import RequestContext
from zope.interface import implementer

from .app import WsgiSessionApp, make_app
from .config import from_settings
from .errors import ConfigurationError, LockTimeout, SessionEnded, StoreUnavailable, WsgiSessionError
from .middleware import plain_answer
from .session import SharedSession

if TYPE_CHECKING:
    from pyramid.config import Configurator

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: registry keys: the composed app, its ``make_app`` options, the declared socket handlers
APP_KEY = "wsgisession.app"
OPTIONS_KEY = "wsgisession.options"
HANDLERS_KEY = "wsgisession.socket_handlers"
_PREFIXES = ("session.", "beaker.session.")
#: where Pyramid's SessionAuthenticationHelper keeps the user id: what ties a session to its user here
PYRAMID_USER_KEY = "auth.userid"
_CSRF_KEY = "_csrft_"
_FLASH_PREFIX = "_f_"


@implementer(ISession)
class PyramidSession(SharedSession):
    """The shared session with Pyramid's ``ISession`` methods."""

    __slots__ = ()

    @property
    def new(self) -> bool:  # type: ignore[override]  # Pyramid's attribute; SharedSession.new() builds one
        return self.is_new

    def changed(self) -> None:
        """Nothing to do: a save compares with the stored state (nested edits included)."""

    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        messages = list(self.get(_FLASH_PREFIX + queue, []))
        if allow_duplicate or msg not in messages:
            messages.append(msg)
            self[_FLASH_PREFIX + queue] = messages

    def pop_flash(self, queue: str = "") -> list[Any]:
        return list(self.pop(_FLASH_PREFIX + queue, []))

    def peek_flash(self, queue: str = "") -> list[Any]:
        return list(self.get(_FLASH_PREFIX + queue, []))

    def new_csrf_token(self) -> str:
        token = secrets.token_hex(20)
        self[_CSRF_KEY] = token
        return token

    def get_csrf_token(self) -> str:
        token = self.get(_CSRF_KEY)
        return token if isinstance(token, str) else self.new_csrf_token()


class SessionAuthenticationHelper(_PyramidHelper):  # type: ignore[misc]  # Pyramid is untyped
    """Pyramid's helper for a security policy that keeps the user id in the session, made safe to share.

    ``remember()`` gives the session a new id first (a planted cookie is worth
    nothing after login) and ``forget()`` ends the session: its sockets get
    ``session_ended`` in every worker, and the request goes on with a new, empty
    session. Pyramid's own helper does neither.
    """

    def remember(self, request: Request, userid: Any, **kw: Any) -> list[Any]:
        session = request.session
        if isinstance(session, SharedSession) and session.get(self.userid_key) != userid:
            session.regenerate_id()
        return list(super().remember(request, userid, **kw))

    def forget(self, request: Request, **kw: Any) -> list[Any]:
        session = request.session
        if isinstance(session, SharedSession):
            session.invalidate()
            return []
        return list(super().forget(request, **kw))


def settings_of(settings: dict[str, Any]) -> dict[str, Any]:
    """``make_app`` keyword arguments from a Pyramid app's settings (``session.*`` as pyramid_beaker reads them)."""
    ours: dict[str, str] = {}
    for name, value in settings.items():
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                key = "beaker.session." + name[len(prefix):]
                if key in ours and ours[key] != value:
                    raise ConfigurationError(f"{name} and {key} disagree: keep one", key=name)
                ours[key] = value
        if name.startswith(("wsgisession.", "socketio.")):
            ours[name] = value
    return from_settings(ours)


def session_factory(request: Request) -> PyramidSession:
    """``request.session``: the session the layer gave this request (or this socket event)."""
    session = request.environ.get("wsgisession.session")
    if not isinstance(session, PyramidSession):
        if "wsgisession.session" in request.environ:  # a socket of allow_anonymous
            raise ConfigurationError("request.session: this socket is anonymous (allow_anonymous): "
                                     "it has no session", key="allow_anonymous")
        raise ConfigurationError("request.session: this request did not pass through the session layer "
                                 "(serve make_wsgi_app(config), not config.make_wsgi_app())", key="app")
    return session


def _composed_app(request: Request) -> WsgiSessionApp:
    """``request.wsgisession``: the composed app (``emit_to_session``, ``disconnect_session``, ``sockets_of``)."""
    composed = request.registry.get(APP_KEY)
    if not isinstance(composed, WsgiSessionApp):
        raise ConfigurationError("request.wsgisession: the app was not built by make_wsgi_app(config)", key="app")
    return composed


def _answer_plainly(exc: Exception, request: Request) -> Response:
    """A view's uncaught store fault or ended session: the layer's plain 503 or 409, never a 500."""
    assert isinstance(exc, (StoreUnavailable, LockTimeout, SessionEnded))
    status, headers, body = plain_answer(exc)
    log.warning("%s %s answered %s: %s", request.method, request.path, status, exc)
    return Response(body=body, status=status, headerlist=[("Content-Type", "text/plain; charset=utf-8"), *headers])


def includeme(config: Configurator) -> None:
    """``config.include("wsgisession.pyramid")``: the session factory, the directive; settings are checked now."""
    config.registry[OPTIONS_KEY] = settings_of(dict(config.get_settings()))
    config.registry[HANDLERS_KEY] = []
    config.set_session_factory(session_factory)
    config.add_request_method(_composed_app, "wsgisession", reify=True)
    config.add_directive("add_socket_event", add_socket_event)
    for error in (StoreUnavailable, LockTimeout, SessionEnded):  # Pyramid would answer them 500
        config.add_exception_view(_answer_plainly, context=error)


def add_socket_event(config: Configurator, handler: Callable[..., Any], event: str, *, namespace: str = "/") -> None:
    """``config.add_socket_event(handler, "incr")``: ``handler(request, *args)`` answers a Socket.IO event.

    ``connect`` handlers get ``(request, auth)`` (return ``False`` to refuse) and
    ``disconnect`` handlers ``(request, reason)``. Two handlers for one event and
    namespace are a configuration conflict, as two views for one route are.
    """
    handler = config.maybe_dotted(handler)

    def register() -> None:
        config.registry[HANDLERS_KEY].append((event, namespace, handler))

    config.action(("wsgisession.socket_event", namespace, event), register)


def socket_event(event: str, *, namespace: str = "/") -> Callable[[F], F]:
    """Declare ``handler(request, *args)`` for a Socket.IO event; ``config.scan()`` registers it."""

    def decorate(handler: F) -> F:
        def register(context: Any, name: str, wrapped: F) -> None:
            context.config.with_package(info.module).add_socket_event(wrapped, event, namespace=namespace)

        info = venusian.attach(handler, register, category="pyramid")
        return handler

    return decorate


def make_wsgi_app(config: Configurator, **options: Any) -> WsgiSessionApp:
    """Pyramid's router inside the session layer; ``options`` add to or override the settings."""
    registry = config.registry
    if OPTIONS_KEY not in registry:
        raise ConfigurationError('make_wsgi_app(config) needs config.include("wsgisession.pyramid") first',
                                 key="include")
    router = config.make_wsgi_app()  # commits: the socket handlers are registered now
    settings = {"user_key": PYRAMID_USER_KEY, **registry[OPTIONS_KEY], **options}
    composed = make_app(router, **settings)
    composed.use_session_class(PyramidSession)
    registry[APP_KEY] = composed
    for event, namespace, handler in registry[HANDLERS_KEY]:
        composed.on(event, _with_request(composed, registry, event, namespace, handler), namespace=namespace)
    return composed


def _with_request(composed: WsgiSessionApp, registry: Any, event: str, namespace: str,
                  handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler(request, *args)`` as the layer calls its handlers.

    The layer calls ``(sid, session, *args)``, a connect ``(sid, session, environ, auth)``
    and a disconnect ``(sid, reason)``; the request is built from the handshake's environ.
    """

    def run(sid: str, *args: Any) -> Any:
        session: SharedSession | None
        environ: dict[str, Any] | None
        if event == "disconnect":  # the socket's session is still found (unbound after the handler)
            session, environ, rest = composed.sockets.session_of(sid), None, args
        elif event == "connect":
            session, environ, rest = args[0], args[1], args[2:]
        else:
            session, environ, rest = args[0], None, args[1:]
        if environ is None:
            environ = composed.sio.get_environ(sid, namespace=namespace) or {}
        request = Request(dict(environ, **{"wsgisession.session": session}))
        request.registry = registry
        request.sid = sid
        request.namespace = namespace
        apply_request_extensions(request)
        try:
            with RequestContext(request):
                return handler(request, *rest)
        except WsgiSessionError as exc:
            if event != "disconnect":
                raise
            # it ended (logout) or the store is down: a disconnect has nothing to save anyway
            log.info("the disconnect handler of socket %s could not use its session: %s", sid, exc)
            return None

    run.__name__ = getattr(handler, "__name__", "handler")
    return run
