"""The Socket.IO side: join the HTTP session at connect, hand it to every event.

    sockets = SessionSockets(manager=manager, cookie=cookie)

    @sockets.on("set_name")
    def set_name(sid, session, name):
        session["name"] = name          # saved (merged) when the handler returns
        return dict(session)            # the acknowledgement

The connect step checks the Origin, reads the handshake's cookie, verifies
it and loads the session; otherwise it refuses the connection and the client's
``connect_error`` carries the reason (``no_cookie``, ``bad_signature``,
``unknown_session``, ``expired``, ``store_unavailable``, ``bad_origin``).
Each event gets the session as stored when it starts (loaded lazily on first
use) and autosaves the changes. Every socket joins a room named by a keyed
hash of its session id, so :meth:`SessionSockets.emit_to_session` and
:meth:`SessionSockets.disconnect_session` reach all tabs of a session. When a
session ends (logout, expiry), its sockets get ``session_ended`` with the
reason and are disconnected; when it is rotated, they follow the new id.

A session that a handler rotates (``session.regenerate_id()``) or starts
(:meth:`SessionSockets.start_session`) reaches the browser's cookie through
the :mod:`~wsgisession.cookie_exchange`: the socket gets a ``session_cookie``
event with a single-use token, which the page's ``wsgisession.keepCookie``
trades for the ``HttpOnly`` cookie.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar, overload

import gevent
import socketio

from .cookie_exchange import EVENT as COOKIE_EVENT, CookieExchange
from .cookies import SessionCookie
from .errors import (
    LockTimeout,
    SessionEnded,
    SessionExpired,
    SessionRefused,
    StoreUnavailable,
    UnknownSession,
    WsgiSessionError,
)
from .lifecycle import Lifecycle
from .manager import SessionManager
from .namespace import SessionNamespace
from .origins import OriginPolicy
from .session import SharedSession

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger(__name__)
security_log = logging.getLogger("wsgisession.security")

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)
_TAMPERING = {"bad_signature", "bad_origin"}
_LIVE: weakref.WeakSet[SessionSockets] = weakref.WeakSet()
_EVENT: contextvars.ContextVar[tuple[str, SharedSession | None]] = contextvars.ContextVar("wsgisession.event")


def current_event() -> tuple[str, SharedSession | None] | None:
    """``(sid, session)`` of the socket event this greenlet runs for an adopted server's handler, else ``None``.

    A framework integration reads it to hand the handler the event's session
    (``flask.session`` in a Flask-SocketIO handler).
    """
    return _EVENT.get(None)


def start_all() -> None:
    """Start the message queue listener of every :class:`SessionSockets` of this process (a server starting).

    python-socketio starts it at the first Engine.IO connection, so a logout
    published by another worker in the moment after a worker's first socket
    connected, before its listener had subscribed, never reached that socket.
    """
    for sockets in list(_LIVE):
        sockets.start()


def drain_all(timeout: float) -> None:
    """Gracefully stop every :class:`SessionSockets` of this process (see :meth:`SessionSockets.drain`)."""
    for sockets in list(_LIVE):
        sockets.drain(timeout)


class SessionSockets:
    """A python-socketio server whose handlers share the HTTP session."""

    def __init__(
        self,
        *,
        manager: SessionManager,
        cookie: SessionCookie,
        server: socketio.Server | None = None,
        origins: OriginPolicy | None = None,
        exchange: CookieExchange | None = None,
        allow_anonymous: bool = False,
        sweep_interval: float | None = 30.0,
        census_timeout: float = 0.25,
        session_class: type[SharedSession] = SharedSession,
        **socketio_options: Any,
    ) -> None:
        self.manager = manager
        #: the class of the sessions handed to handlers (a framework integration's subclass)
        self.session_class = session_class
        self.cookie = cookie
        self.origins = origins or OriginPolicy()
        self.exchange = exchange or CookieExchange(manager=manager, cookie=cookie)
        self.allow_anonymous = allow_anonymous
        options: dict[str, Any] = {"async_mode": "gevent", "cors_allowed_origins": [], **socketio_options}
        self.sio = server or socketio.Server(**options)
        self._bindings: dict[str, tuple[str, str]] = {}  # sid -> (namespace, session id)
        self._handlers: dict[str, dict[str, Handler]] = {}
        self._last_touch: dict[str, float] = {}
        self.lifecycle = Lifecycle(self, sweep_interval=sweep_interval, census_timeout=census_timeout)
        self._running: dict[str, int] = {}  # sid -> handlers running now
        self._close_after: dict[str, str] = {}  # sid -> namespace, to disconnect after its ack
        self._started: dict[str, SharedSession] = {}  # sid -> the session start_session() made in its handler
        self.draining = False
        _LIVE.add(self)
        if server is None:
            # every socket of the default namespace is checked and joined, even with no handler
            # of the app's there (python-socketio accepts "/" without a handler)
            self._namespace("/")

    def start(self) -> None:
        """Start listening to the message queue now (python-socketio would at the first connection)."""
        sio = self.sio
        if not sio.manager_initialized:
            sio.manager_initialized = True
            sio.manager.initialize()

    # -- registration ----------------------------------------------------
    @overload
    def on(self, event: str, handler: H, *, namespace: str = "/") -> H: ...

    @overload
    def on(self, event: str, handler: None = None, *, namespace: str = "/") -> Callable[[H], H]: ...

    def on(self, event: str, handler: H | None = None, *, namespace: str = "/") -> H | Callable[[H], H]:
        """Register ``handler(sid, session, *args)`` for ``event`` (also as a decorator).

        ``connect`` handlers get ``(sid, session, environ, auth)`` and
        ``disconnect`` handlers ``(sid, reason)``.
        """

        def register(func: H) -> H:
            self._namespace(namespace)[event] = func
            if event not in ("connect", "disconnect"):
                self.sio.on(event, namespace=namespace)(
                    lambda sid, *args: self.dispatch(sid, func, args)
                )
            return func

        return register(handler) if handler is not None else register

    def register_namespace(self, namespace_handler: SessionNamespace) -> None:
        """Register a class-based :class:`SessionNamespace`."""
        namespace_handler.sockets = self
        handlers = self._handlers.setdefault(namespace_handler.namespace or "/", {})
        # python-socketio prefers function handlers: where ours check connects already, they run the class's
        for event in ("connect", "disconnect"):
            method = getattr(namespace_handler, "on_" + event, None)
            if method is not None:
                handlers.setdefault(event, method)
        self.sio.register_namespace(namespace_handler)

    def adopt(self) -> None:
        """Run every handler of the server through the session layer, whoever registered it.

        For a server whose handlers another library registers (Flask-SocketIO):
        its connects are checked and joined as ours are (origin, cookie, refusal
        reasons), every event gets a fresh session, saved when its handler returns,
        and disconnects unbind. The handler finds ``(sid, session)`` with
        :func:`current_event`.
        """
        original = self.sio._trigger_event

        def trigger(event: str, namespace: str, *args: Any) -> Any:
            def run(sid: str, session: SharedSession | None, *_: Any) -> Any:
                token = _EVENT.set((sid, session))
                try:
                    return original(event, namespace, *args)
                finally:
                    _EVENT.reset(token)

            if event == "connect":  # (sid, environ[, auth])
                return self.connect(namespace, args[0], args[1], args[2] if len(args) > 2 else None, run)
            if event == "disconnect":  # (sid, reason): the handler reads the session; nothing is saved
                session = self.session_of(args[0])
                self._bindings.pop(args[0], None)
                try:
                    return run(args[0], session)
                except WsgiSessionError as exc:  # it ended (logout) or the store is down
                    log.info("the disconnect handler of socket %s could not use its session: %s", args[0], exc)
                    return None
            return self._call(args[0], self.session_of(args[0]), run, ())

        self.sio._trigger_event = trigger

    def _namespace(self, namespace: str) -> dict[str, Handler]:
        handlers = self._handlers.get(namespace)
        if handlers is None:
            handlers = self._handlers[namespace] = {}
            self.sio.on("connect", namespace=namespace)(
                lambda sid, environ, auth=None: self.connect(namespace, sid, environ, auth, handlers.get("connect"))
            )
            self.sio.on("disconnect", namespace=namespace)(
                lambda sid, reason=None: self.disconnect(sid, reason, handlers.get("disconnect"))
            )
        return handlers

    # -- connection lifecycle -------------------------------------------
    def connect(
        self, namespace: str, sid: str, environ: WSGIEnvironment, auth: Any, handler: Handler | None
    ) -> Any:
        """Check the origin, join the session, then run the app's connect handler."""
        try:
            self.origins.check(environ)
            session = self._join(environ)
        except (SessionRefused, SessionExpired, StoreUnavailable) as exc:
            logger = security_log if exc.reason in _TAMPERING else log
            logger.warning("refused a socket in %s: %s (%s)", namespace, exc.reason, environ.get("REMOTE_ADDR"))
            raise socketio.exceptions.ConnectionRefusedError(exc.reason) from exc
        if session is not None:
            self._bindings[sid] = (namespace, session.id)
            self.sio.enter_room(sid, self.room(session.id), namespace=namespace)
            self.lifecycle.start_sweeper()
        if handler is None:
            return None
        try:
            result = self._call(sid, session, handler, (environ, auth))
        except BaseException:
            self._bindings.pop(sid, None)
            raise
        if result is False:
            self._bindings.pop(sid, None)
        return result

    def _join(self, environ: WSGIEnvironment) -> SharedSession | None:
        try:
            session_id = self.cookie.read(environ)
            session = self._session(session_id)
            session.load()
            return session
        except (SessionRefused, SessionExpired):
            if self.allow_anonymous:
                return None
            raise

    def disconnect(self, sid: str, reason: Any, handler: Handler | None) -> None:
        """Run the app's disconnect handler (``session_of(sid)`` still finds its session), then unbind."""
        try:
            if handler is not None:
                handler(sid, reason)
        finally:
            self._bindings.pop(sid, None)

    # -- events ----------------------------------------------------------
    def session_of(self, sid: str) -> SharedSession | None:
        """A fresh (lazily loaded) session for a connected socket; ``None`` if anonymous."""
        binding = self._bindings.get(sid)
        if binding is None:
            return None
        return self._session(binding[1])

    def _session(self, session_id: str) -> SharedSession:
        """A handler's session: the view's API; ``save()`` asks for a save when the handler returns."""
        session = self.session_class(self.manager, session_id, is_new=False, strict=True)
        session.defer_save = True
        session.cookie_attributes = self.cookie.attributes
        return session

    @contextlib.contextmanager
    def session(self, sid: str) -> Iterator[SharedSession]:
        """The session of a socket, for code outside its handlers (python-socketio's ``Server.session``)::

            with sockets.session(sid) as session:
                session["seen"] = True      # saved (merged) when the block ends without an error

        Fresh when the block starts; an anonymous or unknown socket raises UnknownSession.
        """
        session = self.session_of(sid)
        if session is None:
            raise UnknownSession(f"socket {sid} is bound to no session")
        yield session
        session.finish(autosave=True)

    def dispatch(self, sid: str, handler: Handler, args: tuple[Any, ...]) -> Any:
        """Run ``handler(sid, session, *args)``; autosave; end the socket if its session ended."""
        return self._call(sid, self.session_of(sid), handler, args)

    def _call(self, sid: str, session: SharedSession | None, handler: Handler, args: tuple[Any, ...]) -> Any:
        if self.draining:  # stopping: not run; the ack says so, and the socket is disconnected soon
            return {"error": "server_stopping"}
        running = self._running
        running[sid] = running.get(sid, 0) + 1
        try:
            result = handler(sid, session, *args)
            if session is None:
                session = self._started.pop(sid, None)  # anonymous, and the handler started a session
            if session is not None and not session.ended:
                manager = self.manager
                if session.save_requested or (session.accessed_now and manager.autosave):
                    session.finish(manager.autosave)  # what save() asked for or changed, a due touch included
                elif manager.timeout:
                    self._touch(session)
            return result
        except SessionEnded as exc:
            binding = self._bindings.get(sid)
            if binding is not None:
                self.end_socket(binding[0], sid, exc.reason)
            return {"error": "session_ended", "reason": exc.reason}
        except LockTimeout as exc:  # another process holds the session (or died holding it): try again
            log.warning("event of socket %s not handled: %s", sid, exc)
            return {"error": "lock_timeout"}
        except StoreUnavailable:
            log.error("event of socket %s not handled: the session store is unavailable", sid)
            binding = self._bindings.get(sid)
            self.sio.emit("session_error", {"reason": "store_unavailable"}, to=sid, namespace=binding and binding[0])
            return {"error": "store_unavailable"}  # as a lock timeout is answered: the client may try again
        except (socketio.exceptions.ConnectionRefusedError, ConnectionRefusedError):
            raise  # a connect handler's refusal: python-socketio answers it
        except Exception:
            # the app's bug: log it, answer the ack empty so the client is not left waiting
            log.exception("the handler %s failed for socket %s", getattr(handler, "__name__", handler), sid)
            return None
        finally:
            if session is not None and session.rotated_from is not None and not session.ended:
                self.hand_cookie(sid, session.id)  # rotated in this handler (a login over the socket)
            if self._started:  # a handler started a session and raised before it was taken up
                self._started.pop(sid, None)
            count = running[sid] - 1
            if count:
                running[sid] = count
            else:
                del running[sid]
                namespace = self._close_after.pop(sid, None)
                if namespace is not None:  # runs after python-socketio queued this handler's ack
                    gevent.spawn(self.sio.disconnect, sid, namespace=namespace, ignore_queue=True)

    def start_session(self, sid: str, *, namespace: str = "/") -> SharedSession:
        """Start a session for an anonymous socket, from its handler; the socket is bound to it.

        The record is stored at once (empty), the socket joins its room, and the
        browser gets its cookie through the cookie exchange (``session_cookie``).
        The handler's changes to the returned session are saved when it returns.
        A socket that is bound already gets its own session back.
        """
        bound = self.session_of(sid)
        if bound is not None:
            return bound
        session = self.session_class.create(self.manager, strict=True)
        session.defer_save = True
        session.cookie_attributes = self.cookie.attributes
        self._bindings[sid] = (namespace, session.id)
        self.sio.enter_room(sid, self.room(session.id), namespace=namespace)
        self.lifecycle.start_sweeper()
        self._started[sid] = session
        self.hand_cookie(sid, session.id, namespace=namespace)
        return session

    def hand_cookie(self, sid: str, session_id: str, *, namespace: str | None = None) -> None:
        """Send one socket a single-use token that its page trades for ``session_id``'s cookie."""
        if namespace is None:
            binding = self._bindings.get(sid)
            namespace = binding[0] if binding else "/"
        try:
            token = self.exchange.issue(session_id)
        except WsgiSessionError as exc:  # the store is down: the session lives, its cookie waits for HTTP
            log.error("no cookie token for socket %s: %s", sid, exc)
            return
        environ = self.sio.get_environ(sid, namespace=namespace) or {}
        url = self.exchange.url(environ)
        self.sio.emit(COOKIE_EVENT, {"token": token, "url": url}, to=sid, namespace=namespace, ignore_queue=True)

    def drain(self, timeout: float) -> None:
        """Stop gracefully: let the events in flight finish and save, then close every connection.

        Events that arrive meanwhile are not run: their ack is ``{"error": "server_stopping"}``.
        The Engine.IO connections are dropped, without a Socket.IO disconnect or an
        Engine.IO close packet (both tell a client not to come back): a client
        sees its transport close and reconnects by itself, with its cookie, to a
        worker that is not stopping. The worker's connections then end, so it can
        exit at once.
        """
        self.draining = True
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            gevent.sleep(0.01)
        if self._running:
            log.warning("stopping with %d socket events still running", sum(self._running.values()))
        eio = self.sio.eio
        for connection in list(eio.sockets.values()):
            # aborted: no Engine.IO CLOSE packet, which clients (python-engineio's) take as "do not come back"
            connection.close(wait=False, abort=True)
        eio.sockets.clear()
        self.stop()

    def _touch(self, session: SharedSession) -> None:
        """Slide the idle timeout on socket traffic, at most once per interval."""
        manager = self.manager
        now = manager.clock()
        if now - self._last_touch.get(session.id, 0.0) < manager.touch_interval:
            return
        session.touch()
        self._last_touch[session.id] = now

    def forget_touch(self, session_id: str | None = None) -> None:
        """Forget when a session was last touched (all that are past the interval, without an id)."""
        if session_id is not None:
            self._last_touch.pop(session_id, None)
            return
        now, interval = self.manager.clock(), self.manager.touch_interval
        self._last_touch = {k: t for k, t in self._last_touch.items() if now - t < interval}

    # -- rooms -----------------------------------------------------------
    def room(self, session_id: str) -> str:
        """The room of a session's sockets: a keyed hash, never the raw id."""
        return "wsgisession:" + self.manager.fingerprint(session_id)

    def sockets_of(self, session_id: str, *, namespace: str = "/") -> list[str]:
        """The sids of this process's sockets bound to a session."""
        return [sid for sid, _ in self.sio.manager.get_participants(namespace, self.room(session_id))]

    def emit_to_session(self, session_id: str, event: str, data: Any = None, *, namespace: str = "/") -> None:
        """Emit to every socket of a session (every tab, every worker)."""
        self.sio.emit(event, data, room=self.room(session_id), namespace=namespace)

    def disconnect_session(self, session_id: str, *, reason: str = "disconnected") -> None:
        """Send ``session_ended`` to every socket of a session, in every process, and disconnect them."""
        self.lifecycle.end_sockets(session_id, reason=reason)

    def end_socket(self, namespace: str, sid: str, reason: str) -> None:
        """Tell one local socket its session ended (``session_ended``) and disconnect it.

        A socket whose handler is running is disconnected once that handler's
        acknowledgement is on its way.
        """
        self._bindings.pop(sid, None)
        self.sio.emit("session_ended", {"reason": reason}, to=sid, namespace=namespace, ignore_queue=True)
        if sid in self._running:
            self._close_after[sid] = namespace
        else:
            self.sio.disconnect(sid, namespace=namespace, ignore_queue=True)

    def bindings(self) -> dict[str, tuple[str, str]]:
        """This process's sockets: sid -> (namespace, session id), a copy."""
        return dict(self._bindings)

    def bound_sessions(self) -> set[str]:
        """The ids of the sessions this process's sockets are bound to."""
        return {session_id for _, session_id in list(self._bindings.values())}

    def rebind(self, old_id: str, new_id: str) -> None:
        """Move this process's sockets of session ``old_id`` to ``new_id`` (a rotation), rooms included."""
        bindings = self._bindings
        for sid, (namespace, bound) in list(bindings.items()):
            if bound == old_id:
                bindings[sid] = (namespace, new_id)
                self.sio.leave_room(sid, self.room(old_id), namespace=namespace)
                self.sio.enter_room(sid, self.room(new_id), namespace=namespace)

    def namespaces(self) -> list[str]:
        """The namespaces with handlers: ours, and an adopted server's own."""
        sio = self.sio
        return list(dict.fromkeys([*self._handlers, *sio.handlers, *sio.namespace_handlers]))

    def stop(self) -> None:
        """Stop the periodic expiry sweep (it restarts with the next connection)."""
        self.lifecycle.stop()
