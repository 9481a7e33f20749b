"""wsgisession.pyramid: ``request.session`` is the shared session in Pyramid views and socket handlers.

In process (TestClient: Werkzeug's test client + the app's own python-socketio
server, one cookie jar), with Pyramid's idioms: ``config.include``,
``config.scan()`` of ``@view_config`` and ``@socket_event``, a security policy
over the session (``remember`` / ``forget``, ``request.authenticated_userid``),
``request.session`` as an ``ISession``.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.interfaces import ISession
from pyramid.request import Request
from werkzeug.test import Client

from tests import pyramid_lab
from tests.helpers import SECRET
from wsgisession import ConfigurationError, WsgiSessionApp
from wsgisession.ids import new_session_id
from wsgisession.pyramid import PyramidSession, make_wsgi_app, settings_of
from wsgisession.testclient import TestClient

COOKIE = "beaker.session.id"


@pytest.fixture
def app() -> Iterator[WsgiSessionApp]:
    pyramid_lab.SEEN.clear()
    composed = pyramid_lab.build()
    yield composed
    composed.sockets.stop()


def logged_in(app: WsgiSessionApp, name: str = "ann") -> TestClient:
    client = TestClient(app)
    assert client.get(f"/login/{name}").json == {"user": name}
    return client


def test_request_session_is_the_shared_session_in_views_and_handlers(app: WsgiSessionApp) -> None:
    client = logged_in(app)
    socket = client.socket(auth="hi")
    assert socket.call("incr") == 1
    assert client.get("/set/colour/blue").json == {"auth.userid": "ann", "n": 1, "colour": "blue"}
    assert socket.call("incr") == 2  # the view's write is seen by the next event
    assert client.get("/").json["n"] == 2  # the event's write is seen by the next request
    assert socket.get_received() == [{"name": "count", "args": [1], "namespace": "/"},
                                     {"name": "count", "args": [2], "namespace": "/"}]


def test_handlers_get_a_pyramid_request_with_the_apps_security_policy(app: WsgiSessionApp) -> None:
    client = logged_in(app)
    socket = client.socket(auth={"token": 1})
    assert socket.call("whoami") == {"user": "ann", "identity": {"name": "ann"}, "greeting": "hello",
                                     "path": "/socket.io/"}
    assert pyramid_lab.SEEN == [("connect", "ann", {"token": 1}, socket.sid)]
    chat = client.socket(namespace="/chat")
    assert chat.call("shout", "hi") == "ann: HI on /chat"


def test_a_connect_handler_refuses_and_the_layer_refuses_first(app: WsgiSessionApp) -> None:
    assert TestClient(app).refusal() == "no_cookie"  # before the app's handler runs
    assert pyramid_lab.SEEN == []
    client = logged_in(app)
    assert client.refusal(origin="http://evil.example") == "bad_origin"
    assert client.refusal(auth="refuse") is not None  # the app's handler said False
    assert TestClient(app).refusal(namespace="/chat") == "no_cookie"


def test_the_disconnect_handler_reads_the_session(app: WsgiSessionApp) -> None:
    client = logged_in(app)
    socket = client.socket()
    assert socket.call("note", "remember me") == ["remember me"]
    socket.disconnect()
    assert pyramid_lab.SEEN[-1] == ("disconnect", "remember me", True)
    assert client.get("/").json["_f_notes"] == ["remember me"]


def test_remember_rotates_the_id_and_forget_ends_every_socket(app: WsgiSessionApp) -> None:
    client = TestClient(app)
    client.get("/set/planted/1")  # a session before the login (a planted cookie, say)
    before = client.http.get_cookie(COOKIE)
    assert before is not None
    client.get("/login/ann")
    after = client.http.get_cookie(COOKIE)
    assert after is not None and after.value != before.value
    stale = TestClient(app)
    stale.http.set_cookie(COOKIE, before.value)
    assert stale.refusal() == "unknown_session"
    first, second = client.socket(), client.socket()
    assert client.get("/logout").json == {"bye": True}
    for socket in (first, second):
        assert socket.get_received()[-1] == {"name": "session_ended", "args": [{"reason": "logout"}],
                                             "namespace": "/"}
        assert not socket.is_connected()
    assert client.get("/").json == {"_f_": ["signed out"]}  # the request went on with a new session
    replay = TestClient(app)
    replay.http.set_cookie(COOKIE, after.value)
    assert replay.refusal() == "unknown_session"


def test_a_stale_handler_of_an_ended_session_cannot_sign_the_user_back_in(app: WsgiSessionApp) -> None:
    client = logged_in(app)
    socket = client.socket()
    session_id = app.sockets.bindings()[socket.sid or ""][1]
    app.manager.store.remove(session_id)  # ended behind the socket's back (another host's logout, say)
    assert socket.call("relogin") == {"error": "session_ended", "reason": "logout"}
    assert app.manager.store.read(session_id) is None
    assert not socket.is_connected()


def test_request_session_implements_isession(app: WsgiSessionApp) -> None:
    client = TestClient(app)
    first = client.get("/attrs").json
    assert first["new"] is True and first["created"] > 0
    again = client.get("/attrs").json
    assert again["new"] is False and again["created"] == first["created"]
    assert again["csrf"] == first["csrf"]  # the token is kept in the session
    session = PyramidSession(app.manager, None, is_new=True)
    assert ISession.providedBy(session)
    session.flash("a")
    session.flash("a", allow_duplicate=False)
    session.flash("b", queue="q")
    assert session.peek_flash() == ["a"] and session.pop_flash() == ["a"] and session.pop_flash() == []
    assert session.pop_flash("q") == ["b"]
    token = session.new_csrf_token()
    assert session.get_csrf_token() == token and len(token) == 40
    session.changed()  # accepted: in-place edits are found without it


def test_pyramids_csrf_check_uses_the_shared_session() -> None:
    def post(request: Request) -> Any:
        request.session["posted"] = True
        return {"ok": True}

    with Configurator(settings={"session.secret": SECRET, "session.type": "memory"}) as config:
        config.include("wsgisession.pyramid")
        config.add_route("post", "/post")
        config.add_route("token", "/token")
        config.add_view(post, route_name="post", request_method="POST", renderer="json", require_csrf=True)
        config.add_view(lambda request: {"token": request.session.get_csrf_token()}, route_name="token",
                        renderer="json")
        app = make_wsgi_app(config, sweep_interval=None)
    client = TestClient(app)
    token = client.get("/token").json["token"]
    assert client.post("/post").status_code == 400
    assert client.post("/post", data={"csrf_token": "forged"}).status_code == 400
    assert client.post("/post", data={"csrf_token": token}).json == {"ok": True}
    assert client.post("/post", headers={"X-CSRF-Token": token}).json == {"ok": True}
    app.sockets.stop()


def test_settings_are_read_as_pyramid_beaker_reads_them() -> None:
    assert settings_of({"session.secret": SECRET, "session.type": "memory", "beaker.session.timeout": "60",
                        "wsgisession.lock_timeout": "3", "socketio.ping_interval": "5", "pyramid.x": "y"}) == \
        {"secret": SECRET, "type": "memory", "timeout": 60, "lock_timeout": 3.0,
         "socketio_options": {"ping_interval": 5.0}}
    with pytest.raises(ConfigurationError, match="session.tiemout"):
        settings_of({"session.secret": SECRET, "session.tiemout": "60"})
    with pytest.raises(ConfigurationError, match="disagree") as info:
        settings_of({"session.secret": SECRET, "beaker.session.secret": "another" * 6})
    assert info.value.key in ("session.secret", "beaker.session.secret")


def test_an_unknown_key_is_an_error_at_include_time() -> None:
    config = Configurator(settings={"session.secret": SECRET, "session.tiemout": "60"})
    with pytest.raises(ConfigurationError, match="session.tiemout"):
        config.include("wsgisession.pyramid")


def test_misconfigurations_are_named() -> None:
    with pytest.raises(ConfigurationError, match="config.include"):
        make_wsgi_app(Configurator(settings={}))
    with Configurator(settings={"session.secret": SECRET, "session.type": "memory"}) as config:
        config.include("wsgisession.pyramid")
        config.add_route("show", "/")
        config.add_view(lambda request: dict(request.session), route_name="show", renderer="json")
        router = config.make_wsgi_app()  # the router alone: no session layer in front
    with pytest.raises(ConfigurationError, match="did not pass through the session layer"):
        Client(router).get("/")


def test_two_handlers_for_one_event_are_a_conflict() -> None:
    from pyramid.exceptions import ConfigurationConflictError

    with Configurator(settings={"session.secret": SECRET, "session.type": "memory"}) as config:
        config.include("wsgisession.pyramid")
        config.add_socket_event(lambda request: 1, "x")
        config.add_socket_event(lambda request: 2, "x")
        with pytest.raises(ConfigurationConflictError):
            make_wsgi_app(config)


def test_a_store_that_is_down_is_503_over_http_and_a_refusal_over_the_socket() -> None:
    app = pyramid_lab.build(**{"session.type": "ext:redis", "session.url": "redis://127.0.0.1:1/0"})
    try:
        assert TestClient(app).get("/").json == {}  # no cookie: a new session, the store not asked
        signed = TestClient(app)
        signed.http.set_cookie(COOKIE, app.cookie.sign(new_session_id()))
        answer = signed.get("/")
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        assert b"session store is unavailable" in answer.data
        assert signed.refusal() == "store_unavailable"  # never a new empty session
    finally:
        app.sockets.stop()
