"""wsgisession.testclient: HTTP and sockets in process, one cookie jar, the real connect path."""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from tests.helpers import README, SECRET, Clock, tampered
from wsgisession import ConfigurationError, SessionNamespace, SharedSession, WsgiSessionApp, make_app
from wsgisession.testclient import Refused, TestClient, session_app_of


@Request.application
def views(request: Request) -> Response:
    session = request.environ["beaker.session"]
    if request.path == "/login":
        session.regenerate_id()
        session["user"] = request.args["user"]
    elif request.path == "/logout":
        session.delete()
    return Response(repr(sorted(dict(session).items())))


def build(clock: Clock | None = None, **options: Any) -> WsgiSessionApp:
    app = make_app(views, secret=SECRET, type="memory", sweep_interval=None, **({"clock": clock} if clock else {}),
                   **options)

    @app.on("whoami")
    def whoami(sid: str, session: SharedSession) -> Any:
        return session.get("user")

    @app.on("pair")
    def pair(sid: str, session: SharedSession) -> Any:
        return ("a", 1)  # several ack values

    @app.on("shout")
    def shout(sid: str, session: SharedSession, text: str) -> None:
        app.emit_to_session(session.id, "heard", text.upper())

    @app.on("bytes")
    def echo_bytes(sid: str, session: SharedSession, data: bytes) -> Any:
        return data[::-1]

    return app


@pytest.fixture
def app() -> Iterator[WsgiSessionApp]:
    app = build()
    yield app
    app.sockets.stop()


def test_http_and_sockets_share_one_cookie_jar(app: WsgiSessionApp) -> None:
    client = TestClient(app)
    client.get("/login?user=ann")
    socket = client.socket()
    assert socket.call("whoami") == "ann"
    assert socket.call("pair") == ["a", 1]
    assert socket.call("bytes", b"abc") == b"cba"  # a binary event and a binary ack
    socket.emit("shout", "hi")
    assert socket.get_received() == [{"name": "heard", "args": ["HI"], "namespace": "/"}]
    assert socket.get_received() == []  # taken


def test_refusals_carry_the_servers_reasons(app: WsgiSessionApp) -> None:
    assert TestClient(app).refusal() == "no_cookie"
    client = TestClient(app)
    client.get("/login?user=ann")
    assert client.refusal(origin="http://evil.example") == "bad_origin"
    cookie = client.http.get_cookie("beaker.session.id")
    assert cookie is not None
    forged = TestClient(app)
    forged.http.set_cookie("beaker.session.id", tampered(cookie.value))
    with pytest.raises(Refused) as refused:
        forged.socket()
    assert refused.value.reason == "bad_signature"


def test_a_logout_reaches_every_socket_as_session_ended(app: WsgiSessionApp) -> None:
    client = TestClient(app)
    client.get("/login?user=ann")
    first, second = client.socket(), client.socket()
    client.get("/logout")
    for socket in (first, second):
        assert socket.get_received() == [{"name": "session_ended", "args": [{"reason": "logout"}],
                                          "namespace": "/"}]
        assert not socket.is_connected()
    with pytest.raises(RuntimeError, match="not connected"):
        first.emit("whoami")


def test_disconnect_unbinds_the_socket(app: WsgiSessionApp) -> None:
    client = TestClient(app)
    client.get("/login?user=ann")
    socket = client.socket()
    assert socket.sid in app.sockets.bindings()
    socket.disconnect()
    assert socket.sid is None and app.sockets.bindings() == {}


def test_rule1_holds_for_an_app_with_no_socket_handlers() -> None:
    app = make_app(views, secret=SECRET, type="memory", sweep_interval=None)
    try:
        assert TestClient(app).refusal() == "no_cookie"  # python-socketio alone would accept it
        client = TestClient(app)
        client.get("/login?user=ann")
        socket = client.socket()
        assert app.sockets.bindings()[socket.sid or ""][0] == "/"
    finally:
        app.sockets.stop()


def test_a_class_based_default_namespace_keeps_its_connect_and_disconnect() -> None:
    seen: list[Any] = []

    class Lobby(SessionNamespace):
        def on_connect(self, sid: str, session: SharedSession, environ: Any, auth: Any) -> Any:
            seen.append(("connect", session.get("user"), auth))
            return auth != "refuse"

        def on_disconnect(self, sid: str, reason: Any) -> None:
            session = self.sockets.session_of(sid)  # type: ignore[attr-defined]
            seen.append(("disconnect", session.get("user") if session is not None else None))

    app = make_app(views, secret=SECRET, type="memory", sweep_interval=None)
    app.register_namespace(Lobby("/"))
    try:
        client = TestClient(app)
        assert client.refusal() == "no_cookie"  # checked before on_connect runs
        client.get("/login?user=ann")
        client.socket(auth="hello").disconnect()
        with pytest.raises(Refused):
            client.socket(auth="refuse")
        assert seen == [("connect", "ann", "hello"), ("disconnect", "ann"), ("connect", "ann", "refuse")]
    finally:
        app.sockets.stop()


def test_expiry_is_tested_with_the_apps_clock() -> None:
    clock = Clock()
    app = build(clock=clock, timeout=60)
    client = TestClient(app)
    client.get("/login?user=ann")
    socket = client.socket()
    clock.advance(30)
    assert socket.call("whoami") == "ann"
    assert client.sweep() == 0
    clock.advance(61)
    assert client.sweep() == 1
    assert socket.get_received()[-1]["args"] == [{"reason": "expired"}]
    assert client.refusal() == "unknown_session"  # the sweep removed the expired record


def test_an_app_without_the_layer_is_named() -> None:
    with pytest.raises(ConfigurationError, match="not served through wsgisession"):
        TestClient(views)
    composed = build()
    wrapper = type("Wrapper", (), {"app": composed})()
    assert session_app_of(wrapper)[0] is composed


def test_the_readme_testing_example_runs() -> None:
    text = README.read_text()
    blocks = [re.sub(r"^    ", "", b, flags=re.M)
              for b in re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)]
    namespace: dict[str, Any] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    section = text.split("``wsgisession.testclient.TestClient(app)``", 1)[1]
    example = re.search(r"::\n\n((?:    .*\n|\n)+)", section).group(1)  # type: ignore[union-attr]
    exec(compile(re.sub(r"^    ", "", example, flags=re.M), str(README), "exec"), namespace)
    namespace["app"].sockets.stop()
