from __future__ import annotations

import json
from pathlib import Path

import pytest
from werkzeug.test import Client

from tests.helpers import SECRET, Clock
from wsgisession import ConfigurationError, SessionNamespace, SharedSession, WsgiSessionApp, make_app
from wsgisession.app import filter_app_factory, resolve



def hello(environ: dict[str, object], start_response: object) -> list[bytes]:
    session = environ["beaker.session"]
    session["hits"] = session.get("hits", 0) + 1  # type: ignore[attr-defined]
    start_response("200 OK", [("Content-Type", "application/json")])  # type: ignore[operator]
    return [json.dumps(dict(session)).encode()]  # type: ignore[call-overload]


def test_make_app_composes_the_session_layer(tmp_path: Path) -> None:
    app = make_app(hello, secret=SECRET, type="file", data_dir=str(tmp_path))
    client = Client(app)
    assert client.get("/").json == {"hits": 1}
    assert client.get("/").json == {"hits": 2}
    assert client.get("/socket.io/?EIO=4&transport=polling").status_code == 200


def test_make_app_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="secret is required"):
        make_app(hello, data_dir=str(tmp_path))


@pytest.mark.parametrize("backend", ["dbm", "ext:memcached", "ext:database"])
def test_pickling_backends_are_refused(tmp_path: Path, backend: str) -> None:
    with pytest.raises(ConfigurationError, match="unpickle"):
        make_app(hello, secret=SECRET, type=backend, data_dir=str(tmp_path))


def test_handlers_from_dotted_paths(tmp_path: Path) -> None:
    app = make_app(hello, secret=SECRET, type="memory",
                   handlers=["examples.counter:register", "tests.apps:Lab"])
    assert isinstance(app, WsgiSessionApp)
    assert "incr" in app.sockets._handlers["/"] and "/lab" in app.sockets._handlers
    assert isinstance(app.sio.namespace_handlers["/lab"], SessionNamespace)


@pytest.mark.parametrize("path", ["no.such.module:x", "wsgisession:nothing_here", "tests.apps:SECRET_OF_NOTHING"])
def test_bad_handler_paths_name_the_path(path: str) -> None:
    with pytest.raises(ConfigurationError, match="cannot import"):
        resolve(path)


def test_filter_app_factory_reads_paste_settings(tmp_path: Path) -> None:
    app = filter_app_factory(
        hello,
        {"here": str(tmp_path), "beaker.session.secret": SECRET},
        **{"beaker.session.type": "file", "beaker.session.data_dir": str(tmp_path), "beaker.session.key": "sid"},
    )
    response = Client(app).get("/")
    assert "sid=" in response.headers["Set-Cookie"]


def test_dependency_floors_carry_the_security_fixes() -> None:
    from importlib.metadata import requires, version

    declared = set(requires("wsgisession") or [])
    assert {"python-engineio>=4.13.2", "python-socketio>=5.16.2"} <= declared
    as_tuple = lambda v: tuple(int(p) for p in v.split(".")[:3])  # noqa: E731
    assert as_tuple(version("python-engineio")) >= (4, 13, 2)
    assert as_tuple(version("python-socketio")) >= (5, 16, 2)


def test_use_session_class_hands_views_and_handlers_the_subclass(tmp_path: Path) -> None:
    class Tagged(SharedSession):
        __slots__ = ()

    seen: list[type] = []

    def view(environ: dict[str, object], start_response: object) -> list[bytes]:
        seen.append(type(environ["beaker.session"]))
        start_response("200 OK", [])  # type: ignore[operator]
        return [b""]

    app = make_app(view, secret=SECRET, type="memory")
    app.use_session_class(Tagged)
    Client(app).get("/")
    assert seen == [Tagged]
    assert type(app.sockets.session_class.create(app.manager)) is Tagged
    with pytest.raises(ConfigurationError, match="not a SharedSession subclass"):
        app.use_session_class(dict)  # type: ignore[arg-type]


# -- users and their devices ---------------------------------------------------
def devices_app(clock: Clock | None = None) -> WsgiSessionApp:
    from werkzeug.wrappers import Request, Response

    @Request.application
    def views(request: Request) -> Response:
        session = request.environ["beaker.session"]
        composed: WsgiSessionApp = request.environ["wsgisession.app"]
        if request.path == "/login":
            session.regenerate_id()
            session.bind_user(request.args["user"], label=request.args.get("device"))
            return Response("in")
        if request.path == "/devices":
            infos = composed.sessions_of_user(session.user_id or "", current=session)
            return Response(json.dumps([[i.label, i.sockets, i.current, i.handle] for i in infos]))
        if request.path == "/others":
            return Response(str(composed.end_user_sessions(session.user_id or "", keep=session)))
        if request.path == "/end":
            return Response(str(composed.end_user_session(session.user_id or "", request.args["handle"])))
        return Response(repr(dict(session)))

    app = make_app(views, secret=SECRET, type="memory", sweep_interval=None, **({"clock": clock} if clock else {}))

    @app.on("whoami")
    def whoami(sid: str, session: SharedSession) -> object:
        return session.user_id

    @app.on("save_back")
    def save_back(sid: str, session: SharedSession) -> object:
        session["back"] = True  # a handler of an ended session trying to write
        return "saved"

    return app


def test_a_users_devices_are_listed_with_their_sockets_and_ended_with_them() -> None:
    from wsgisession.testclient import TestClient

    app = devices_app()
    try:
        phone, laptop, tablet = TestClient(app), TestClient(app), TestClient(app)
        for client, device in ((phone, "Phone"), (laptop, "Laptop"), (tablet, "Tablet")):
            assert client.get(f"/login?user=ann&device={device}").text == "in"
        TestClient(app).get("/login?user=bob&device=Other")
        phone_sockets = [phone.socket(), phone.socket()]
        laptop_socket = laptop.socket()
        listing = json.loads(laptop.get("/devices").text)
        assert [row[:3] for row in listing] == [["Phone", 2, False], ["Laptop", 1, True], ["Tablet", 0, False]]
        handles = {row[0]: row[3] for row in listing}
        assert all(len(h) == 16 for h in handles.values())
        raw_ids = {session_id for _, session_id in app.sockets.bindings().values()}
        assert not raw_ids & set(handles.values())  # the handle is never the id
        assert laptop.get("/end?handle=" + handles["Tablet"]).text == "True"  # "sign out that device"
        assert laptop.get("/end?handle=" + handles["Tablet"]).text == "False"  # gone already
        assert tablet.refusal() == "unknown_session"
        assert laptop.get("/others").text == "1"  # "sign out every other device": the phone
        for socket in phone_sockets:
            assert socket.get_received()[-1] == {"name": "session_ended", "args": [{"reason": "signed_out"}],
                                                 "namespace": "/"}
            assert not socket.is_connected()
        assert laptop_socket.is_connected() and laptop_socket.call("whoami") == "ann"
        assert [row[0] for row in json.loads(laptop.get("/devices").text)] == ["Laptop"]
        assert phone.refusal() == "unknown_session"  # the phone's cookie loads nothing
        assert "bob" in repr(app.manager.sessions_of_user("bob")[0][1].data)
    finally:
        app.sockets.stop()


def test_a_handler_running_for_an_ended_device_cannot_save_it_back() -> None:
    from wsgisession.testclient import TestClient

    app = devices_app()

    @app.on("sign_out_everywhere_then_write")
    def race(sid: str, session: SharedSession) -> object:
        session["before"] = 1
        app.end_user_sessions("carol")  # another device's request, while this handler runs
        session["back"] = True  # saved when the handler returns: it must not bring the session back
        return "written"

    try:
        phone = TestClient(app)
        phone.get("/login?user=carol&device=Phone")
        socket = phone.socket()
        session_id = app.sockets.bindings()[socket.sid or ""][1]
        assert socket.call("sign_out_everywhere_then_write")["error"] == "session_ended"  # nothing saved
        assert {"name": "session_ended", "args": [{"reason": "signed_out"}], "namespace": "/"} in socket.get_received()
        assert app.manager.store.read(session_id) is None
        assert not socket.is_connected()
        assert app.manager.sessions_of_user("carol") == []
        assert phone.refusal() == "unknown_session"
    finally:
        app.sockets.stop()
