from __future__ import annotations

import json
from pathlib import Path

import pytest
from werkzeug.test import Client

from tests.helpers import SECRET
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
