"""Composition: the user's app + the session layer + Socket.IO, as one WSGI callable.

From Python::

    from wsgisession import make_app

    app = make_app(my_wsgi_app, secret=SECRET, type="sqlite", data_dir="./sessions")

    @app.on("set_name")
    def set_name(sid, session, name):
        session["name"] = name

From an INI file (PasteDeploy), as a filter that wraps any WSGI app::

    [filter:session]
    use = egg:wsgisession#main
    beaker.session.secret = env:SESSION_SECRET
    beaker.session.type = sqlite
    beaker.session.data_dir = %(here)s/data/sessions
    wsgisession.handlers = myapp.sockets:register
"""
from __future__ import annotations

import hmac
import importlib
import logging
import os
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar, overload
from urllib.parse import urlsplit

import socketio
from engineio import json as engineio_json
from werkzeug.exceptions import NotFound

from . import wirejson
from .config import from_settings
from .cookie_exchange import CookieExchange
from .cookies import Expires, SameSite, SessionCookie
from .errors import ConfigurationError
from .fanout import SENTINEL_SCHEMES, carry_lifecycle, manager_for
from .manager import SessionManager
from .middleware import SessionMiddleware
from .origins import CorsHeaders, OriginPolicy
from .namespace import SessionNamespace
from .realtime import SessionSockets
from .ids import Fingerprint
from .session import SharedSession
from .store import Store
from .users import DEFAULT_USER_KEY, LABEL_KEY, SessionInfo

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

H = TypeVar("H", bound=Callable[..., Any])

log = logging.getLogger(__name__)
security_log = logging.getLogger("wsgisession.security")
_told_no_websocket = False  # the one log line per process of _cannot_upgrade


class WsgiSessionApp:
    """The composed WSGI callable: ``/socket.io/`` to Socket.IO, the rest to the app."""

    def __init__(self, app: WSGIApplication, *, sockets: SessionSockets, socketio_path: str = "socket.io",
                 max_message_size: int | None = 1_000_000) -> None:
        self.app = app
        #: the largest websocket frame or polling body accepted (read by our server handler)
        self.max_message_size = max_message_size
        self.socketio_path = socketio_path
        self.sockets = sockets
        self.manager = sockets.manager
        self.cookie = sockets.cookie
        self.sio = sockets.sio
        self.exchange = sockets.exchange
        self.middleware = SessionMiddleware(app, manager=self.manager, cookie=self.cookie)
        wsgi: WSGIApplication = socketio.WSGIApp(
            self.sio, self.exchange.wrap(self.middleware), socketio_path=socketio_path
        )
        if sockets.origins.allowed is not None:
            wsgi = CorsHeaders(wsgi, policy=sockets.origins)
        self.wsgi = wsgi

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgisession.app"] = self  # views reach emit_to_session() and friends here
        if "HTTP_UPGRADE" in environ and "wsgi.websocket" not in environ:
            return self._cannot_upgrade(environ, start_response)
        return self.wsgi(environ, start_response)

    def _cannot_upgrade(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """A websocket upgrade that the server did not hand over (plain ``gunicorn -k gevent``, say).

        python-engineio would raise on every such connection; this answers 400 in one line,
        logs once per process which worker to use, and the client stays on polling.
        """
        socketio_prefix = "/" + self.socketio_path.strip("/") + "/"
        if str(environ.get("HTTP_UPGRADE", "")).lower() != "websocket" or not str(
            environ.get("PATH_INFO", "")
        ).startswith(socketio_prefix):  # another upgrade, or the app's own websocket: not ours to judge
            return self.wsgi(environ, start_response)
        global _told_no_websocket
        if not _told_no_websocket:
            _told_no_websocket = True
            log.error("this server does not hand websocket upgrades to the app: run gunicorn with "
                      "-k wsgisession.server.Worker (conf/gunicorn.conf.py sets it) or `wsgisession serve`; "
                      "clients stay on polling meanwhile")
        body = b"400 Bad Request: this server cannot upgrade to websocket (use -k wsgisession.server.Worker)\n"
        start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                           ("Content-Length", str(len(body)))])
        return [body]

    def use_session_class(self, session_class: type[SharedSession]) -> None:
        """Hand views and handlers sessions of ``session_class`` (a framework's :class:`SharedSession` subclass)."""
        if not (isinstance(session_class, type) and issubclass(session_class, SharedSession)):
            raise ConfigurationError(f"{session_class!r} is not a SharedSession subclass", key="session_class")
        self.middleware.session_class = session_class
        self.sockets.session_class = session_class

    # -- the Socket.IO side, for the app's code -------------------------------
    @overload
    def on(self, event: str, handler: H, *, namespace: str = "/") -> H: ...

    @overload
    def on(self, event: str, handler: None = None, *, namespace: str = "/") -> Callable[[H], H]: ...

    def on(self, event: str, handler: H | None = None, *, namespace: str = "/") -> H | Callable[[H], H]:
        """Register ``handler(sid, session, *args)`` for ``event`` (also as a decorator)."""
        return self.sockets.on(event, handler, namespace=namespace)

    def register_namespace(self, namespace_handler: SessionNamespace) -> None:
        """Register a class-based :class:`~wsgisession.namespace.SessionNamespace`."""
        self.sockets.register_namespace(namespace_handler)

    def emit_to_session(self, session_id: str, event: str, data: Any = None, *, namespace: str = "/") -> None:
        """Emit to every socket of a session (every tab, every worker)."""
        self.sockets.emit_to_session(session_id, event, data, namespace=namespace)

    def disconnect_session(self, session_id: str, *, reason: str = "disconnected") -> None:
        """Send ``session_ended`` to every socket of a session, in every process, and disconnect them."""
        self.sockets.disconnect_session(session_id, reason=reason)

    def sockets_of(self, session_id: str, *, namespace: str = "/") -> list[str]:
        """The sids of this process's sockets bound to a session."""
        return self.sockets.sockets_of(session_id, namespace=namespace)

    # -- users and their devices ---------------------------------------------
    def sessions_of_user(self, user_id: str | int, *, current: SharedSession | str | None = None,
                         count_sockets: bool = True) -> list[SessionInfo]:
        """A user's live sessions, oldest first: public handle, created, last active, label, sockets now.

        ``current`` (the request's session, say) is marked ``current``. Sockets are
        counted in every process (:meth:`Lifecycle.count_sockets`): with a message
        queue that waits ``census_timeout``; ``count_sockets=False`` skips it (0).
        """
        found = self.manager.sessions_of_user(user_id)
        ids = [session_id for session_id, _ in found]
        counts = self.sockets.lifecycle.count_sockets(ids) if count_sockets else {}
        current_id = current.id if isinstance(current, SharedSession) else current
        fingerprint = self.manager.fingerprint
        return [SessionInfo(handle=fingerprint(session_id), created=record.created, last_active=record.accessed,
                            label=record.data.get(LABEL_KEY), sockets=counts.get(session_id, 0),
                            current=session_id == current_id)
                for session_id, record in found]

    def end_user_sessions(self, user_id: str | int, *, keep: SharedSession | str | None = None,
                          reason: str = "signed_out") -> int:
        """End every session of a user but ``keep`` ("sign out everywhere else"); returns how many.

        Each record is removed (its cookie loads nothing), and every socket of it, in
        every worker and host, gets ``session_ended`` with ``reason`` and is
        disconnected; a handler still running for one of them cannot save it back.
        """
        keep_id = keep.id if isinstance(keep, SharedSession) else keep
        ended = self.manager.end_user_sessions(user_id, keep=keep_id, reason=reason)
        security_log.info("ended %d session(s) of a user (%s)", ended, reason)
        return ended

    def end_user_session(self, user_id: str | int, handle: str, *, reason: str = "signed_out") -> bool:
        """End the one session of a user whose public handle is ``handle`` ("sign out that device")."""
        fingerprint = self.manager.fingerprint
        for session_id, _ in self.manager.sessions_of_user(user_id):
            if hmac.compare_digest(fingerprint(session_id), str(handle)):
                self.manager.delete(session_id, reason=reason)
                security_log.info("ended session %s of a user (%s)", handle, reason)
                return True
        return False

    def start_session(self, sid: str, *, namespace: str = "/") -> SharedSession:
        """Start a session for an anonymous socket, from its handler (its page gets the cookie)."""
        return self.sockets.start_session(sid, namespace=namespace)

    def session(self, sid: str) -> AbstractContextManager[SharedSession]:
        """``with app.session(sid) as session:``, a socket's session outside its handlers, saved at the end."""
        return self.sockets.session(sid)


def _not_found(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    return NotFound()(environ, start_response)


def resolve(path: str) -> Any:
    """Import ``package.module:attr`` (or ``package.module.attr``)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"cannot import {path!r}: {exc}", key="handlers", value=path) from exc
    return obj


def install_handlers(app: WsgiSessionApp, handlers: Sequence[str | Any]) -> None:
    """Register socket handlers: ``SessionNamespace`` subclasses, or ``register(app)`` callables."""
    for item in handlers:
        obj = resolve(item) if isinstance(item, str) else item
        if isinstance(obj, type) and issubclass(obj, SessionNamespace):
            app.register_namespace(obj())
        elif callable(obj):
            obj(app)
        else:
            raise ConfigurationError(f"{item!r} is neither a SessionNamespace nor a callable", key="handlers")


def _is_sentinel(url: str | None) -> bool:
    return bool(url) and urlsplit(str(url)).scheme.lower() in SENTINEL_SCHEMES


def _check_sentinel_settings(given: dict[str, Any], *, store_url: str | None, queue_url: str | None) -> None:
    """The ``redis_sentinel_*`` settings given are for sentinels: refused, naming the key, where no URL has any."""
    if given and not (_is_sentinel(store_url) or _is_sentinel(queue_url)):
        key = f"wsgisession.redis_sentinel_{next(iter(given))}"
        raise ConfigurationError(
            f"{key} is for a Redis reached through its sentinels: it needs a redis+sentinel:// URL "
            "(beaker.session.url of a Redis store, or socketio.message_queue)", key=key)


def make_app(
    app: WSGIApplication | None = None,
    *,
    secret: str | Sequence[str] | None = None,
    type: str = "sqlite",
    data_dir: str | None = None,
    url: str | None = None,
    key: str = "beaker.session.id",
    cookie_path: str = "/",
    cookie_domain: str | None = None,
    secure: bool = False,
    httponly: bool = True,
    samesite: SameSite | None = "Lax",
    cookie_max_age: int | None = None,
    cookie_expires: Expires = True,
    timeout: int | None = None,
    absolute_timeout: int | None = None,
    touch_interval: int = 60,
    autosave: bool = True,
    lock_timeout: float = 10.0,
    lock_ttl: float = 5.0,
    locking: bool = True,
    redis_prefix: str = "wsgisession:",
    redis_socket_timeout: float = 5.0,
    redis_connect_timeout: float = 5.0,
    redis_read_retries: int = 1,
    redis_retry_backoff: float = 0.05,
    redis_cluster: bool = False,
    redis_ssl_cert_reqs: str | None = None,
    redis_ssl_ca_certs: str | None = None,
    redis_ssl_certfile: str | None = None,
    redis_ssl_keyfile: str | None = None,
    redis_sentinel_username: str | None = None,
    redis_sentinel_password: str | None = None,
    redis_sentinel_tls: bool = False,
    allow_anonymous: bool = False,
    allowed_origins: Sequence[str] | None = None,
    allow_missing_origin: bool = False,
    cookie_exchange_path: str = "/wsgisession/cookie",
    cookie_token_ttl: int = 30,
    client_js_path: str = "/wsgisession/client.js",
    socketio_path: str = "socket.io",
    handlers: Sequence[str | Any] = (),
    max_message_size: int | None = 1_000_000,
    sweep_interval: float | None = 30.0,
    user_key: str = DEFAULT_USER_KEY,
    census_timeout: float = 0.25,
    fast_json: bool = True,
    socketio_options: dict[str, Any] | None = None,
    server: socketio.Server | None = None,
    clock: Callable[[], float] = time.time,
) -> WsgiSessionApp:
    """Build the composed app from explicit keyword arguments (see README.rst).

    ``server``: a python-socketio server built elsewhere (Flask-SocketIO's), whose
    handlers then all run through the session layer (:meth:`SessionSockets.adopt`);
    ``socketio_options`` must then be empty. The ``redis_*`` options are the
    Redis store's (:class:`wsgisession.redis_client.RedisSettings`); the
    ``redis_sentinel_*`` ones are also the queue's, on a ``redis+sentinel://`` URL.
    """
    cookie = SessionCookie(
        secret=secret,  # type: ignore[arg-type]  # checked inside: None is refused
        name=key,
        path=cookie_path,
        domain=cookie_domain,
        secure=secure,
        httponly=httponly,
        samesite=samesite,
        max_age=cookie_max_age,
        expires=cookie_expires,
    )
    if type in ("sqlite", "file") and not data_dir and not (type == "sqlite" and url):
        data_dir = os.path.join(os.getcwd(), "data", "sessions")
    redis = None
    redis_settings: dict[str, Any] = dict(
        prefix=redis_prefix, socket_timeout=redis_socket_timeout, connect_timeout=redis_connect_timeout,
        read_retries=redis_read_retries, retry_backoff=redis_retry_backoff, cluster=redis_cluster,
        ssl_cert_reqs=redis_ssl_cert_reqs, ssl_ca_certs=redis_ssl_ca_certs, ssl_certfile=redis_ssl_certfile,
        ssl_keyfile=redis_ssl_keyfile, sentinel_username=redis_sentinel_username,
        sentinel_password=redis_sentinel_password, sentinel_tls=redis_sentinel_tls,
    )
    sentinel_given = {name: value for name, value in (
        ("password", redis_sentinel_password), ("username", redis_sentinel_username), ("tls", redis_sentinel_tls),
    ) if value}
    if type in ("ext:redis", "redis"):
        from .redis_client import RedisSettings  # redis is an optional extra

        redis = RedisSettings(**redis_settings)
    store = Store(type=type, data_dir=data_dir, url=url, lock_timeout=lock_timeout, lock_ttl=lock_ttl,
                  locking=locking, redis=redis)
    manager = SessionManager(
        store=store,
        fingerprint=Fingerprint(secret=secret),  # type: ignore[arg-type]  # the cookie refused None already
        timeout=timeout,
        absolute_timeout=absolute_timeout,
        touch_interval=touch_interval,
        autosave=autosave,
        clock=clock,
        user_key=user_key,
    )
    options = dict(socketio_options or {})
    queue = options.pop("message_queue", None)
    channel = options.pop("channel", "socketio")
    _check_sentinel_settings(sentinel_given, store_url=url if redis is not None else None, queue_url=queue)
    if queue:
        if "client_manager" in options:
            raise ConfigurationError("give socketio.message_queue or a client_manager, not both",
                                     key="socketio.message_queue")
        sentinel_options = None
        if sentinel_given and _is_sentinel(queue):  # the queue asks the sentinels as the store does
            from .redis_client import RedisSettings

            sentinel_options = (redis or RedisSettings(**redis_settings)).sentinel_options()
        options["client_manager"] = manager_for(queue, channel=channel, sentinel_options=sentinel_options)
    elif "client_manager" in options:
        carry_lifecycle(options["client_manager"])  # a manager passed from Python carries endings too
    if max_message_size is not None:
        options.setdefault("max_http_buffer_size", max_message_size)
    # Socket.IO packets by orjson, with the same results (python-socketio keeps it for the whole process)
    options.setdefault("json", wirejson if fast_json else engineio_json)
    if server is not None:
        if socketio_options:
            raise ConfigurationError("socketio_options cannot change a server built elsewhere: "
                                     "give them to whoever built it", key="socketio_options")
        options = {}
        if max_message_size is not None:
            server.eio.max_http_buffer_size = max_message_size
        server.eio.cors_allowed_origins = []  # the origin policy decides, with a reason the client sees
        carry_lifecycle(server.manager)
    sockets = SessionSockets(
        manager=manager,
        server=server,
        cookie=cookie,
        origins=OriginPolicy(allowed_origins=allowed_origins, allow_missing_origin=allow_missing_origin),
        exchange=CookieExchange(
            manager=manager, cookie=cookie, path=cookie_exchange_path, client_path=client_js_path, ttl=cookie_token_ttl
        ),
        allow_anonymous=allow_anonymous,
        sweep_interval=sweep_interval,
        census_timeout=census_timeout,
        **options,
    )
    if server is not None:
        sockets.adopt()
    composed = WsgiSessionApp(app or _not_found, sockets=sockets, socketio_path=socketio_path,
                              max_message_size=max_message_size)
    install_handlers(composed, handlers)
    return composed


def settings_of(global_conf: dict[str, str], local_conf: dict[str, str]) -> dict[str, Any]:
    """PasteDeploy's global and local settings, ours only, local winning."""
    merged = {k: v for k, v in global_conf.items() if k.startswith(("beaker.session.", "wsgisession.", "socketio."))}
    merged.update(local_conf)
    return from_settings(merged)


def filter_app_factory(app: WSGIApplication, global_conf: dict[str, str], **local_conf: str) -> WsgiSessionApp:
    """PasteDeploy ``egg:wsgisession#main``: wrap any WSGI app."""
    return make_app(app, **settings_of(global_conf, local_conf))
