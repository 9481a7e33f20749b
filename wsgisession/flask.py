"""Flask: ``flask.session`` is the shared session, in views and in Flask-SocketIO handlers.

An app written the way Flask-SocketIO's documentation writes apps adopts the
shared session by one set-up line, after ``SocketIO(app)``::

    from flask import Flask, session
    from flask_socketio import SocketIO, emit
    from wsgisession.flask import WsgiSession

    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SESSION_SECRET"]
    socketio = SocketIO(app)
    WsgiSession(app, socketio)          # the one new line

    @socketio.on("incr")
    def incr(data):
        session["n"] = session.get("n", 0) + 1      # saved (merged) when the handler returns
        emit("count", session["n"], to=request.sid)

Views and ``@socketio.on`` handlers then share one live session: each event
sees it as stored when it starts (Flask-SocketIO's default hands handlers a
frozen copy), saves what it changed when it returns, and ``request.sid``,
``g``, ``current_app``, ``emit``/``send``/``join_room``/``rooms``/``disconnect``
and acknowledgements work as Flask-SocketIO's users expect, because its own
machinery runs the handlers (with ``manage_session`` off: the session is ours).

Flask-Login works unchanged: ``login_user()`` rotates the session id (the old
cookie loads nothing, the user's sockets follow), ``current_user`` in a handler
is that user, and ``logout_user()`` ends the session: every socket of it, in
every worker, gets ``session_ended`` and is disconnected, and the request goes
on with a new, empty session.

Settings come from keyword arguments (:func:`wsgisession.make_app`'s), else
``app.config['WSGISESSION_<NAME>']`` (``WSGISESSION_TYPE``, ``WSGISESSION_URL``
...), and Flask's own ``SECRET_KEY`` and ``SESSION_COOKIE_*`` keys (SameSite
``None``, Flask's default, means ours: ``Lax``).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import flask
from flask.sessions import NullSession, SessionInterface, SessionMixin

from .app import WsgiSessionApp, make_app
from .errors import ConfigurationError, LockTimeout, SessionEnded, StoreUnavailable
from .middleware import plain_answer
from .realtime import current_event
from .session import SharedSession
from .users import SessionInfo

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from collections.abc import Iterable

    from flask_socketio import SocketIO
    from werkzeug.wrappers import Response

log = logging.getLogger(__name__)

EXTENSION = "wsgisession"
#: the session key Flask-Login keeps the user id in: what ties a session to its user here
FLASK_LOGIN_USER_KEY = "_user_id"
#: ``app.config`` keys that take our keyword arguments: ``WSGISESSION_<NAME>``
CONFIG_PREFIX = "WSGISESSION_"
_NOT_FROM_CONFIG = {"app", "server", "handlers", "clock", "socketio_path"}
_FLASK_COOKIE_KEYS = {
    "key": "SESSION_COOKIE_NAME",
    "cookie_domain": "SESSION_COOKIE_DOMAIN",
    "cookie_path": "SESSION_COOKIE_PATH",
    "secure": "SESSION_COOKIE_SECURE",
    "httponly": "SESSION_COOKIE_HTTPONLY",
    "samesite": "SESSION_COOKIE_SAMESITE",
}


class FlaskSession(SharedSession, SessionMixin):
    """The shared session with Flask's ``SessionMixin`` attributes.

    ``permanent`` is Flask's (the ``_permanent`` key; the cookie then lasts
    ``PERMANENT_SESSION_LIFETIME``); ``new`` is ``is_new``;
    ``modified`` says whether the data differs from the stored state (setting it
    is accepted and changes nothing: in-place edits are found without it);
    ``accessed`` says whether this request or event used the session (Flask
    sets it on every ``flask.session`` lookup; that is not a use of the data).
    """

    __slots__ = ()

    @property
    def new(self) -> bool:  # type: ignore[override]
        return self.is_new

    @property
    def modified(self) -> bool:
        return not self._pending_load and self._modified()

    @modified.setter
    def modified(self, value: bool) -> None:
        pass  # merged saves compare against the stored state: nothing to force

    @property  # type: ignore[override]  # Beaker's accessed() is a method; Flask's an attribute
    def accessed(self) -> bool:
        return self.accessed_now

    @accessed.setter
    def accessed(self, value: bool) -> None:
        pass  # Flask marks every lookup of flask.session; the data's own use is what counts

    def finish(self, autosave: bool) -> bool:
        """Flask's cookie lifetime, then the layer's save: a permanent session's cookie lasts
        ``PERMANENT_SESSION_LIFETIME`` (sent again on each request it was used in, as
        ``SESSION_REFRESH_EACH_REQUEST`` says); a session made non-permanent gets a browser-session cookie.
        """
        if not self._pending_load and not self.ended and flask.has_app_context():
            permanent = self._data.get("_permanent")
            if permanent is not None:
                app = flask.current_app
                changed = "_permanent" in self.changes()[0]
                if changed or (permanent and app.config.get("SESSION_REFRESH_EACH_REQUEST", True)):
                    self.cookie_expires = app.permanent_session_lifetime if permanent else True
        return super().finish(autosave)


class UnavailableSession(NullSession):
    """``flask.session`` where there is no shared session: reads are empty, writes say why."""

    reason = "no shared session here"

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"flask.session is unavailable: {self.reason}")

    __setitem__ = __delitem__ = clear = pop = popitem = update = setdefault = _fail


class SharedSessionInterface(SessionInterface):
    """Flask's session interface over the session layer: it opens, the layer saves.

    A view gets the request's session (``environ['beaker.session']``, saved and
    its cookie set when the response starts); a Flask-SocketIO handler gets its
    event's fresh session (saved when the handler returns).
    """

    def open_session(self, app: flask.Flask, request: flask.Request) -> SessionMixin | None:
        event = current_event()
        if event is not None:
            session = event[1]
            if session is None:
                return _unavailable("this socket is anonymous (allow_anonymous): it has no session")
            return session  # type: ignore[return-value]  # a FlaskSession (use_session_class)
        session = request.environ.get("wsgisession.session")
        if session is None:
            return _unavailable("this request did not pass through the session layer "
                                "(a test_request_context, or app.wsgi_app replaced after WsgiSession(app, ...))")
        return session  # type: ignore[no-any-return]

    def save_session(self, app: flask.Flask, session: SessionMixin, response: Response) -> None:
        pass  # the session layer saves and sets the cookie (HTTP: when the response starts; events: on return)


def _unavailable(reason: str) -> UnavailableSession:
    session = UnavailableSession()
    session.reason = reason
    return session


class _FlaskEnviron:
    """Puts the Flask app in the environ, where Flask-SocketIO's handlers look for it."""

    def __init__(self, app: WSGIApplication, *, flask_app: flask.Flask) -> None:
        self.app = app
        self.flask_app = flask_app

    def prepare_environ(self, environ: WSGIEnvironment) -> None:
        environ["flask.app"] = self.flask_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["flask.app"] = self.flask_app
        return self.app(environ, start_response)


class WsgiSession:
    """The Flask extension: ``WsgiSession(app, socketio)``, or ``init_app(app, socketio)`` in a factory."""

    def __init__(self, app: flask.Flask | None = None, socketio: SocketIO | None = None, **options: Any) -> None:
        self.options = options
        self.app: WsgiSessionApp | None = None
        if app is not None:
            self.init_app(app, socketio, **options)

    def init_app(self, app: flask.Flask, socketio: SocketIO | None = None, **options: Any) -> WsgiSessionApp:
        """Make ``flask.session`` the shared session and serve Socket.IO through the session layer.

        ``socketio``: the app's ``flask_socketio.SocketIO``, initialised with the app
        already; without one, the layer serves its own Socket.IO endpoint (handlers
        then register with ``app.extensions['wsgisession'].app.on(...)``).
        """
        settings = {**settings_from_config(app.config), **self.options, **options}
        settings.setdefault("user_key", FLASK_LOGIN_USER_KEY)  # Flask-Login's login_user() binds the session
        server = None
        inner: WSGIApplication = app.wsgi_app
        if socketio is not None:
            extension: Any = socketio  # its stubs leave out the attributes used here
            server = extension.server
            if server is None:
                raise ConfigurationError("WsgiSession(app, socketio) needs SocketIO(app) (or socketio.init_app(app)) "
                                         "first: its server does not exist yet", key="socketio")
            extension.manage_session = False  # Flask-SocketIO's own session is the frozen copy: ours replaces it
            inner = getattr(app.wsgi_app, "wsgi_app", app.wsgi_app)  # under Flask-SocketIO's middleware
            settings.setdefault("socketio_path", getattr(app.wsgi_app, "engineio_path", "socket.io"))
            allowed = extension.server_options.get("cors_allowed_origins")
            if allowed is not None and "allowed_origins" not in settings:
                settings["allowed_origins"] = [allowed] if isinstance(allowed, str) else list(allowed)
        composed = make_app(inner, server=server, **settings)
        composed.use_session_class(FlaskSession)
        app.session_interface = SharedSessionInterface()
        app.wsgi_app = _FlaskEnviron(composed, flask_app=app)  # type: ignore[method-assign]
        app.extensions[EXTENSION] = self
        self.app = composed
        for error in (StoreUnavailable, LockTimeout, SessionEnded):  # Flask would answer them 500
            app.register_error_handler(error, _answer_plainly)
        _connect_flask_login(app)
        return composed


    # -- the session layer's socket side, for views and handlers ------------------
    def _composed(self) -> WsgiSessionApp:
        if self.app is None:
            raise ConfigurationError("WsgiSession is not initialised: call init_app(app, socketio) first", key="app")
        return self.app

    def emit_to_session(self, session_id: str, event: str, data: Any = None, *, namespace: str = "/") -> None:
        """Emit to every socket of a session (every tab, every worker): ``flask.session.id`` for the current one."""
        self._composed().emit_to_session(session_id, event, data, namespace=namespace)

    def disconnect_session(self, session_id: str, *, reason: str = "disconnected") -> None:
        """Send ``session_ended`` to every socket of a session, in every process, and disconnect them."""
        self._composed().disconnect_session(session_id, reason=reason)

    def sockets_of(self, session_id: str, *, namespace: str = "/") -> list[str]:
        """The sids of this process's sockets bound to a session."""
        return self._composed().sockets_of(session_id, namespace=namespace)

    # -- users and their devices ---------------------------------------------------
    def sessions_of_user(self, user_id: str | int, *, count_sockets: bool = True) -> list[SessionInfo]:
        """A user's live sessions (``current_user.id`` for "your devices"), the request's marked ``current``."""
        return self._composed().sessions_of_user(user_id, current=_current_session(), count_sockets=count_sockets)

    def end_user_sessions(self, user_id: str | int, *, keep: Any = None, reason: str = "signed_out") -> int:
        """End every session of a user but ``keep`` (``flask.session`` for "sign out other devices")."""
        return self._composed().end_user_sessions(user_id, keep=keep, reason=reason)

    def end_user_session(self, user_id: str | int, handle: str, *, reason: str = "signed_out") -> bool:
        """End the session of a user with that public handle ("sign out that device")."""
        return self._composed().end_user_session(user_id, handle, reason=reason)


def _current_session() -> SharedSession | None:
    if not flask.has_request_context():
        return None
    session = flask.session._get_current_object()  # type: ignore[attr-defined]
    return session if isinstance(session, SharedSession) else None


def settings_from_config(config: flask.Config) -> dict[str, Any]:
    """``make_app`` keyword arguments from a Flask config: ``WSGISESSION_*``, ``SECRET_KEY``, ``SESSION_COOKIE_*``."""
    import inspect

    accepted = set(inspect.signature(make_app).parameters) - _NOT_FROM_CONFIG
    settings: dict[str, Any] = {}
    for name, value in config.items():
        if name.startswith(CONFIG_PREFIX):
            key = name[len(CONFIG_PREFIX):].lower()
            if key not in accepted:
                raise ConfigurationError(f"unknown setting {name} (known: {', '.join(sorted(CONFIG_PREFIX + k.upper() for k in accepted))})",
                                         key=name)
            settings[key] = value
    if "secret" not in settings and config.get("SECRET_KEY"):
        settings["secret"] = config["SECRET_KEY"]
    for key, flask_key in _FLASK_COOKIE_KEYS.items():
        if key not in settings and config.get(flask_key) is not None:
            settings[key] = config[flask_key]
    if settings.get("samesite") is False:
        settings["samesite"] = None
    return settings


def _answer_plainly(exc: Exception) -> flask.Response:
    """A view's uncaught store fault or ended session: the layer's plain 503 or 409, never a 500.

    (The layer removes the cookie of an ended session when the response starts.)
    """
    assert isinstance(exc, (StoreUnavailable, LockTimeout, SessionEnded))
    status, headers, body = plain_answer(exc)
    log.warning("%s %s answered %s: %s", flask.request.method, flask.request.path, status, exc)
    return flask.Response(body, status=status, headers=headers, content_type="text/plain; charset=utf-8")


def _connect_flask_login(app: flask.Flask) -> None:
    """Login rotates the session id; logout ends the session (Flask-Login does neither by itself)."""
    try:
        from flask_login import user_logged_in, user_logged_out  # type: ignore[import-untyped]
    except ImportError:  # Flask-Login is optional
        return
    user_logged_in.connect(_rotate_at_login, app, weak=False)
    user_logged_out.connect(_end_at_logout, app, weak=False)


def _rotate_at_login(sender: flask.Flask, **extra: Any) -> None:
    session = flask.session._get_current_object()  # type: ignore[attr-defined]
    if isinstance(session, SharedSession):
        session.regenerate_id()  # a planted cookie is worth nothing after login


def _end_at_logout(sender: flask.Flask, **extra: Any) -> None:
    session = flask.session._get_current_object()  # type: ignore[attr-defined]
    if isinstance(session, SharedSession):
        session.invalidate()  # its sockets end everywhere; the request goes on with a new, empty session
