"""wsgisession.flask: flask.session is the shared session in views and Flask-SocketIO handlers.

In process (TestClient: Werkzeug's test client + the app's own python-socketio
server, one cookie jar), with Flask's idioms: ``flask.session``, ``request.sid``,
``g``, ``emit``, ``join_room``, Flask-Login's ``login_user`` / ``current_user``.
"""
from __future__ import annotations

import difflib
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import flask
import gevent
import gevent.event
import pytest
from flask import Flask, current_app, g, request, session
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_socketio import SocketIO, emit, join_room, rooms

from tests.helpers import ROOT, SECRET, Clock, tampered
from wsgisession import ConfigurationError
from wsgisession.flask import FlaskSession, WsgiSession, settings_from_config
from wsgisession.ids import new_session_id
from wsgisession.testclient import TestClient


class User(UserMixin):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        self.id = name


def make(clock: Clock | None = None, **options: Any) -> tuple[Flask, SocketIO]:
    """A small Flask-SocketIO + Flask-Login app, written as their docs write apps."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    app.config["WSGISESSION_TYPE"] = "memory"
    socketio = SocketIO(app)
    WsgiSession(app, socketio, **({"clock": clock} if clock else {}), **options)
    login_manager = LoginManager(app)
    login_manager.user_loader(lambda user_id: User(user_id))

    @app.get("/login/<name>")
    def login(name: str) -> Any:
        login_user(User(name))
        session["n"] = 0
        return {"user": name}

    @app.get("/logout")
    def logout() -> Any:
        logout_user()
        session["flash"] = "signed out"  # the request goes on with a new session
        return {"bye": True}

    @app.get("/")
    def show() -> Any:
        return dict(session)

    @app.get("/set/<key>/<value>")
    def set_key(key: str, value: str) -> Any:
        session[key] = int(value) if value.isdigit() else value
        return dict(session)

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> Any:
        if not current_user.is_authenticated:
            return False
        join_room(current_user.id)
        return None

    @socketio.on("whoami")
    def whoami() -> Any:
        return current_user.get_id()

    @socketio.on("incr")
    def incr() -> Any:
        session["n"] = session.get("n", 0) + 1
        emit("count", session["n"], to=current_user.id)
        return session["n"]

    @socketio.on("context")
    def context() -> Any:
        g.seen = request.sid
        return {"sid": request.sid, "g": g.seen, "app": current_app.name, "rooms": sorted(rooms()),
                "type": type(session._get_current_object()).__name__}

    @socketio.on("nested")
    def nested(value: Any) -> Any:
        session.setdefault("items", []).append(value)  # an in-place edit, no `modified = True`
        return session["items"]

    @socketio.on("relogin")
    def relogin() -> Any:
        login_user(User("mallory"))
        return current_user.get_id()

    return app, socketio


@pytest.fixture
def flask_app() -> Iterator[tuple[Flask, SocketIO]]:
    app, socketio = make()
    yield app, socketio
    app.extensions["wsgisession"].app.sockets.stop()


def logged_in(app: Flask, name: str = "ann") -> TestClient:
    client = TestClient(app)
    assert client.get(f"/login/{name}").json == {"user": name}
    return client


def test_views_and_handlers_share_flask_session(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    client = logged_in(app)
    socket = client.socket()
    assert socket.call("incr") == 1
    assert client.get("/").json["n"] == 1  # the handler's write, seen by the view
    client.get("/set/n/41")
    assert socket.call("incr") == 42  # the view's write, seen by the next event
    client.get("/set/note/hi")
    assert socket.call("context")["type"] == "FlaskSession"
    assert socket.call("nested", "a") == ["a"]
    assert socket.call("nested", "b") == ["a", "b"]  # the in-place edit was saved
    assert client.get("/").json["items"] == ["a", "b"]
    assert client.get("/").json["note"] == "hi"


def test_each_event_sees_the_session_as_stored_when_it_starts(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    client = logged_in(app)
    socket = client.socket()
    assert socket.call("incr") == 1
    client.get("/set/n/5")
    client.get("/set/n/7")
    assert socket.call("incr") == 8  # not 2: the event loaded what the views stored meanwhile
    assert client.get("/").json["n"] == 8


def test_handlers_run_in_flask_contexts_with_flask_socketio_idioms(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    client = logged_in(app)
    first, second = client.socket(), client.socket()
    context = first.call("context")
    assert context["sid"] == first.sid and context["g"] == first.sid and context["app"] == app.name
    assert "ann" in context["rooms"] and first.sid in context["rooms"]
    assert first.call("incr") == 1
    assert second.get_received() == [{"name": "count", "args": [1], "namespace": "/"}]  # emit(..., to=room)


def test_flask_session_has_sessionmixin_attributes(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    seen: dict[str, Any] = {}

    @app.get("/attrs")
    def attrs() -> Any:
        current = session._get_current_object()
        seen["new"] = session.new
        seen["accessed_before"] = session.accessed
        seen["modified_before"] = session.modified
        session["x"] = 1
        seen["modified_after"] = session.modified
        session.permanent = True
        seen["permanent"] = session.permanent
        seen["type"] = type(current)
        return {}

    client = TestClient(app)
    client.get("/attrs")
    assert seen == {"new": True, "accessed_before": False, "modified_before": False, "modified_after": True,
                    "permanent": True, "type": FlaskSession}
    assert client.get("/").json == {"x": 1, "_permanent": True}
    client.get("/attrs")
    assert seen["new"] is False


def test_login_rotates_the_id_and_current_user_works_in_handlers(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    client = TestClient(app)
    client.get("/set/planted/1")  # a session before the login (a planted cookie, say)
    before = client.http.get_cookie("session")
    assert before is not None
    stale = TestClient(app)
    stale.http.set_cookie("session", before.value)
    client.get("/login/ann")
    after = client.http.get_cookie("session")
    assert after is not None and after.value != before.value
    assert stale.refusal() == "unknown_session"
    assert stale.get("/").json == {}  # the old cookie loads nothing (and is removed)
    socket = client.socket()
    assert socket.call("whoami") == "ann"


def test_logout_ends_every_socket_and_a_stale_handler_cannot_log_back_in(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    client = logged_in(app)
    first, second = client.socket(), client.socket()
    old_cookie = client.http.get_cookie("session")
    assert old_cookie is not None
    assert client.get("/logout").json == {"bye": True}
    for socket in (first, second):
        assert socket.get_received()[-1] == {"name": "session_ended", "args": [{"reason": "logout"}],
                                             "namespace": "/"}
        assert not socket.is_connected()
    assert client.get("/").json == {"flash": "signed out"}  # a new session for the rest of the request
    replay = TestClient(app)
    replay.http.set_cookie("session", old_cookie.value)
    assert replay.refusal() == "unknown_session"


def test_a_handler_of_an_ended_session_cannot_log_the_user_back_in(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    client = logged_in(app)
    socket = client.socket()
    manager = app.extensions["wsgisession"].app.manager
    session_id = app.extensions["wsgisession"].app.sockets.bindings()[socket.sid][1]  # type: ignore[index]
    manager.store.remove(session_id)  # ended behind the socket's back (another host's logout, say)
    assert socket.call("relogin") == {"error": "session_ended", "reason": "logout"}
    assert manager.store.read(session_id) is None
    assert not socket.is_connected()


def test_a_login_inside_a_handler_hands_the_socket_a_cookie_token(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    client = logged_in(app)
    socket = client.socket()
    assert socket.call("relogin") == "mallory"
    tokens = [m for m in socket.get_received() if m["name"] == "session_cookie"]
    assert len(tokens) == 1 and set(tokens[0]["args"][0]) == {"token", "url"}


def test_sockets_are_refused_with_reasons(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    assert TestClient(app).refusal() == "no_cookie"
    client = logged_in(app)
    assert client.refusal(origin="http://evil.example") == "bad_origin"
    assert client.refusal(origin=None) == "bad_origin"  # a cookie and no Origin: refused
    cookie = client.http.get_cookie("session")
    assert cookie is not None
    forged = TestClient(app)
    forged.http.set_cookie("session", tampered(cookie.value))
    assert forged.refusal() == "bad_signature"
    anonymous = TestClient(app)
    anonymous.get("/set/a/1")
    assert anonymous.refusal() == "Connection rejected by server"  # the app's own connect handler said no


def test_flask_socketio_own_test_client_works_with_an_origin(flask_app: tuple[Flask, SocketIO]) -> None:
    app, socketio = flask_app
    http = app.test_client()
    http.get("/login/ann")
    socket = socketio.test_client(app, flask_test_client=http, headers={"Origin": "http://localhost"})
    assert socket.is_connected()
    assert socket.emit("incr", callback=True) == 1
    assert http.get("/").json["n"] == 1


def test_expiry_reaches_sockets_with_the_apps_clock() -> None:
    clock = Clock()
    app, _ = make(clock=clock, timeout=60, touch_interval=1)
    try:
        client = logged_in(app)
        socket = client.socket()
        clock.advance(61)
        assert client.sweep() == 1
        assert socket.get_received()[-1]["args"] == [{"reason": "expired"}]
        assert client.get("/").json == {}
    finally:
        app.extensions["wsgisession"].app.sockets.stop()


# -- configuration ---------------------------------------------------------
def test_settings_from_flask_config() -> None:
    config = flask.Config(".", {"SECRET_KEY": SECRET, "WSGISESSION_TYPE": "memory", "WSGISESSION_TIMEOUT": 60,
                                "SESSION_COOKIE_NAME": "sid", "SESSION_COOKIE_SAMESITE": None,
                                "SESSION_COOKIE_SECURE": True})
    assert settings_from_config(config) == {"secret": SECRET, "type": "memory", "timeout": 60, "key": "sid",
                                            "secure": True}


def test_keyword_arguments_win_over_app_config() -> None:
    app, _ = make(type="memory", key="mine")
    client = TestClient(app)
    client.get("/set/a/1")
    assert client.http.get_cookie("mine") is not None
    app.extensions["wsgisession"].app.sockets.stop()


def test_an_unknown_wsgisession_key_is_an_error_naming_it() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, WSGISESSION_TYEP="memory")
    with pytest.raises(ConfigurationError, match="WSGISESSION_TYEP"):
        WsgiSession(app, SocketIO(app))


def test_a_weak_secret_key_refuses_to_start() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="dev", WSGISESSION_TYPE="memory")
    with pytest.raises(ConfigurationError, match="secret"):
        WsgiSession(app, SocketIO(app))


def test_socketio_must_be_initialised_first() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, WSGISESSION_TYPE="memory")
    with pytest.raises(ConfigurationError, match=r"SocketIO\(app\)"):
        WsgiSession(app, SocketIO())


def test_flask_socketio_cors_allowed_origins_become_ours() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, WSGISESSION_TYPE="memory")
    socketio = SocketIO(app, cors_allowed_origins=["http://app.example"])
    ext = WsgiSession(app, socketio)
    assert ext.app is not None and ext.app.sockets.origins.allowed == {"http://app.example"}
    with pytest.raises(ConfigurationError):
        WsgiSession(Flask(__name__), SocketIO(app, cors_allowed_origins="*"), secret=SECRET, type="memory")


def test_flask_socketio_message_queues_carry_endings() -> None:
    import socketio as python_socketio

    from wsgisession.fanout import LifecycleManager

    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, WSGISESSION_TYPE="memory")
    queue = SocketIO(app, message_queue="redis://127.0.0.1:1/0")  # never reached: nothing is published here
    WsgiSession(app, queue)
    assert isinstance(queue.server.manager, LifecycleManager)
    assert isinstance(queue.server.manager, python_socketio.RedisManager)
    other = Flask(__name__)
    other.config.update(SECRET_KEY=SECRET, WSGISESSION_TYPE="memory")
    kombu = SocketIO(other, client_manager=python_socketio.KombuManager("memory://", write_only=True))
    WsgiSession(other, kombu)
    assert isinstance(kombu.server.manager, LifecycleManager)
    assert isinstance(kombu.server.manager, python_socketio.KombuManager)


def test_a_request_context_without_the_layer_says_why() -> None:
    app, _ = make()
    with app.test_request_context("/"):
        assert dict(session) == {}
        with pytest.raises(RuntimeError, match="did not pass through the session layer"):
            session["x"] = 1
    app.extensions["wsgisession"].app.sockets.stop()


# -- the port of a stock Flask-SocketIO app: only set-up lines change ------------
def documented_diff() -> str:
    text = (ROOT / "docs" / "flask.rst").read_text(encoding="utf-8")
    block = text.split(".. code-block:: diff\n\n", 1)[1].split("\n\n", 1)[0] + "\n"
    return "".join(line[4:] + "\n" for line in block.splitlines())


def stock_source() -> tuple[str, str]:
    """The example's source, and the stock Flask-SocketIO app rebuilt by undoing the documented diff."""
    after = (ROOT / "examples" / "flask_app" / "app.py").read_text(encoding="utf-8")
    added = [line[1:] for line in documented_diff().splitlines() if line.startswith("+") and not line.startswith("+++")]
    lines = after.splitlines()
    for line in added:
        lines.remove(line)
    return after, "\n".join(lines) + "\n"


def load(name: str, source: str, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.setenv("FLASK_WSGISESSION_TYPE", "memory")
    module = types.ModuleType(name)
    module.__file__ = str(ROOT / "examples" / "flask_app" / "app.py")  # its templates/ beside it
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def test_the_documented_diff_is_the_whole_port() -> None:
    after, before = stock_source()
    diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        "before.py (stock Flask-SocketIO)", "examples/flask_app/app.py", n=1))
    assert diff == documented_diff()
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert len(changed) == 2  # an import and one set-up line


def sign_in(http: Any) -> None:
    page = http.get("/").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert http.post("/login", data={"csrf": csrf, "user": "ann", "password": "ann-password"}).status_code == 302


def test_the_stock_app_freezes_the_session_and_the_port_shares_it(monkeypatch: pytest.MonkeyPatch) -> None:
    after, before = stock_source()
    stock = load("flask_stock_app", before, monkeypatch)
    http = stock.app.test_client()
    sign_in(http)
    socket = stock.socketio.test_client(stock.app, flask_test_client=http)
    assert socket.emit("whoami", callback=True) == "ann"
    assert socket.emit("incr", callback=True) == 1
    assert http.get("/api/me").json == {"user": "ann", "n": 0}  # stock: the socket's write never reaches HTTP

    ported = load("flask_ported_app", after, monkeypatch)
    try:
        client = TestClient(ported.app)
        sign_in(client)
        socket2 = client.socket()
        assert socket2.call("whoami") == "ann"
        assert socket2.call("incr") == 1
        assert client.get("/api/me").json == {"user": "ann", "n": 1}  # shared
    finally:
        ported.app.extensions["wsgisession"].app.sockets.stop()


def test_the_example_logs_out_by_post_with_a_csrf_token(monkeypatch: pytest.MonkeyPatch) -> None:
    after, _ = stock_source()
    example = load("flask_example_csrf", after, monkeypatch)
    try:
        client = TestClient(example.app)
        sign_in(client)
        socket = client.socket()
        assert client.get("/logout").status_code == 405  # no GET logout: an <img> cannot sign anyone out
        assert client.post("/logout", data={"csrf": "forged"}).status_code == 400
        assert socket.is_connected()
        page = client.get("/").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        assert client.post("/logout", data={"csrf": csrf}).status_code == 302
        assert socket.get_received()[-1]["name"] == "session_ended"
    finally:
        example.app.extensions["wsgisession"].app.sockets.stop()



def test_the_readme_flask_example_runs() -> None:
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    section = text.split("Flask and Flask-SocketIO\n------------------------\n", 1)[1]
    block = re.search(r"::\n\n((?:    .*\n|\n)+)", section).group(1)  # type: ignore[union-attr]
    namespace: dict[str, Any] = {"__name__": "readme_flask", "SECRET": SECRET}
    exec(compile(re.sub(r"^    ", "", block, flags=re.M), "README.rst", "exec"), namespace)
    app = namespace["app"]
    try:
        client = TestClient(app)
        assert client.get("/visit").json == {"visits": 1}
        socket = client.socket()
        assert socket.call("visits") == 2
        assert socket.get_received() == [{"name": "seen", "args": [2], "namespace": "/"}]
        assert client.get("/visit").json == {"visits": 3}
    finally:
        app.extensions["wsgisession"].app.sockets.stop()


def test_an_app_factory_takes_ini_settings_through_the_filters_parser() -> None:
    from wsgisession.app import settings_of

    app = Flask(__name__)
    socketio = SocketIO(app)
    local_conf = {"beaker.session.secret": SECRET, "beaker.session.type": "memory", "beaker.session.key": "ini",
                  "wsgisession.lock_timeout": "3"}
    ext = WsgiSession(app, socketio, **settings_of({}, local_conf))
    assert ext.app is not None and ext.app.manager.store.lock_timeout == 3.0
    client = TestClient(app)

    @app.get("/w")
    def write() -> Any:
        session["a"] = 1
        return {}

    client.get("/w")
    assert client.http.get_cookie("ini") is not None
    with pytest.raises(ConfigurationError, match="wsgisession.lock_timout"):
        settings_of({}, {"wsgisession.lock_timout": "3"})
    ext.app.sockets.stop()


def test_send_leave_room_disconnect_and_on_error_work_as_flask_socketio_users_expect() -> None:
    from flask_socketio import disconnect, leave_room, send

    app, socketio = make()
    errors: list[str] = []

    @socketio.on("message")
    def on_message(text: Any) -> None:
        send(f"echo {text}")

    @socketio.on("leave")
    def on_leave() -> Any:
        leave_room(current_user.id)
        return sorted(rooms())

    @socketio.on("bye")
    def on_bye() -> None:
        session["said_bye"] = True
        disconnect()

    @socketio.on("boom")
    def on_boom() -> None:
        raise ValueError("the app's bug")

    @socketio.on_error()
    def on_error(exc: Exception) -> Any:
        errors.append(str(exc))
        return {"error": "handled"}

    try:
        client = logged_in(app)
        socket = client.socket()
        socket.emit("message", "hi")
        assert socket.get_received() == [{"name": "message", "args": ["echo hi"], "namespace": "/"}]
        assert "ann" not in socket.call("leave")
        assert socket.call("boom") == {"error": "handled"} and errors == ["the app's bug"]
        socket.emit("bye")
        assert not socket.is_connected()
        assert app.extensions["wsgisession"].app.sockets.bindings() == {}
        assert client.get("/").json["said_bye"] is True  # saved: the handler returned normally
    finally:
        app.extensions["wsgisession"].app.sockets.stop()


def test_views_reach_a_sessions_sockets_through_the_extension(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    ext: WsgiSession = app.extensions["wsgisession"]

    @app.get("/ping")
    def ping() -> Any:
        ext.emit_to_session(session.id, "ping", len(ext.sockets_of(session.id)))
        return {}

    @app.get("/kick")
    def kick() -> Any:
        ext.disconnect_session(session.id, reason="kicked")
        return {}

    client = logged_in(app)
    first, second = client.socket(), client.socket()
    client.get("/ping")
    assert first.get_received() == second.get_received() == [{"name": "ping", "args": [2], "namespace": "/"}]
    client.get("/kick")
    assert first.get_received()[-1]["args"] == [{"reason": "kicked"}] and not second.is_connected()
    with pytest.raises(ConfigurationError, match="not initialised"):
        WsgiSession().emit_to_session("x", "y")


def test_a_store_that_is_down_is_503_over_http_and_a_refusal_over_the_socket() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, WSGISESSION_TYPE="redis", WSGISESSION_URL="redis://127.0.0.1:1/0")
    socketio = SocketIO(app)
    ext = WsgiSession(app, socketio)

    @app.get("/")
    def show() -> Any:
        return dict(session)

    assert TestClient(app).get("/").json == {}  # no cookie: a new session, the store not asked
    signed = TestClient(app)
    signed.http.set_cookie("session", ext.app.cookie.sign(new_session_id()))  # type: ignore[union-attr]
    answer = signed.get("/")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert signed.refusal() == "store_unavailable"  # never a new empty session


def test_a_session_that_ended_under_a_view_is_409_and_a_busy_lock_503(flask_app: tuple[Flask, SocketIO]) -> None:
    app, _ = flask_app
    manager = app.extensions["wsgisession"].app.manager

    @app.get("/vanish-then-save")
    def vanish() -> Any:
        session.get("n")
        manager.store.remove(session.id)  # a logout elsewhere, a store expiry, mid-request
        session["b"] = 2
        session.save()
        return {}

    @app.get("/busy")
    def busy() -> Any:
        holding = gevent.event.Event()

        def hold(session_id: str) -> None:
            with manager.store.transaction(session_id):  # as another request or process would
                holding.set()
                gevent.sleep(0.3)

        holder = gevent.spawn(hold, session.id)
        holding.wait()
        manager.store.lock_timeout = 0.05
        try:
            with session.atomic():
                session["n"] = 1
        finally:
            manager.store.lock_timeout = 10.0
            holder.join()
        return {}

    client = logged_in(app)
    answer = client.get("/vanish-then-save")
    assert answer.status_code == 409 and b"the session ended while this request used it" in answer.data
    assert "session=;" in answer.headers["Set-Cookie"]  # removed
    assert client.get("/").json == {}
    client = logged_in(app)
    answer = client.get("/busy")
    assert answer.status_code == 503 and b"the session is busy" in answer.data


def test_a_permanent_session_cookie_lasts_permanent_session_lifetime(flask_app: tuple[Flask, SocketIO]) -> None:
    import datetime

    from werkzeug.http import parse_date

    app, _ = flask_app
    app.config["PERMANENT_SESSION_LIFETIME"] = datetime.timedelta(days=3)

    @app.get("/remember-me/<on>")
    def remember_me(on: str) -> Any:
        session.permanent = on == "yes"
        return {"permanent": session.permanent}

    client = logged_in(app)
    plain = client.get("/").headers.get("Set-Cookie") or ""
    assert "Expires" not in plain and "expires" not in plain  # a browser-session cookie, as Flask's
    answer = client.get("/remember-me/yes")
    expires = re.search(r"expires=([^;]+)", answer.headers["Set-Cookie"], flags=re.I)
    assert expires is not None
    when = parse_date(expires.group(1))
    assert when is not None
    left = when - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(days=2, hours=23) < left <= datetime.timedelta(days=3)
    refreshed = client.get("/").headers.get("Set-Cookie") or ""
    assert re.search(r"expires=", refreshed, flags=re.I)  # SESSION_REFRESH_EACH_REQUEST: sent again
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    assert client.get("/").headers.get("Set-Cookie") is None
    back = client.get("/remember-me/no").headers["Set-Cookie"]
    assert not re.search(r"expires=", back, flags=re.I) and client.get("/").json["_permanent"] is False
