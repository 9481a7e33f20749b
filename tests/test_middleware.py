"""The WSGI side: cookies, lazy loading, autosave, 503 when the store is down."""
from __future__ import annotations

import json
import logging
from typing import Any, Callable

import gevent
import gevent.event
import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from tests.helpers import SECRET
from tests.servers import free_port
from wsgisession.cookies import SessionCookie
from wsgisession.ids import Fingerprint
from wsgisession.manager import SessionManager
from wsgisession.middleware import SessionMiddleware
from wsgisession.store import Store


@Request.application  # type: ignore[arg-type]
def app(request: Request) -> Response:
    session = request.environ["beaker.session"]
    if request.path == "/set":
        session.update(request.args.to_dict())
    elif request.path == "/logout":
        session.delete()
    elif request.path == "/invalidate":
        session.invalidate()
        session["fresh"] = "1"
    elif request.path == "/rotate":
        session.regenerate_id()
    elif request.path == "/incr":
        with session.atomic():
            session["n"] = session.get("n", 0) + 1
    elif request.path == "/vanish-then-save":  # the record goes (a logout elsewhere, a store expiry) mid-request
        session.get("a")
        request.environ["wsgisession.manager"].store.remove(session.id)
        session["b"] = "2"
        session.save()
    elif request.path == "/static":
        return Response("no session used")
    return Response(json.dumps(dict(session)), mimetype="application/json")


@pytest.fixture
def manager(make_manager: Callable[..., SessionManager], backend: str) -> SessionManager:
    return make_manager(backend, secret=SECRET)


COOKIE = SessionCookie(secret=SECRET, domain="localhost", path="/")


@pytest.fixture
def client(manager: SessionManager) -> Client:
    return Client(SessionMiddleware(app, manager=manager, cookie=COOKIE))


def session_cookie(client: Client) -> str | None:
    cookie = client.get_cookie("beaker.session.id", domain="localhost")
    return None if cookie is None else cookie.value


def test_no_cookie_until_something_is_saved(client: Client) -> None:
    response = client.get("/get")
    assert "Set-Cookie" not in response.headers and response.headers["Vary"] == "Cookie"
    assert "Vary" not in client.get("/static").headers
    client.get("/set?a=1")
    assert session_cookie(client)
    assert client.get("/get").json == {"a": "1"}


def test_cookie_is_not_resent_when_unchanged(client: Client) -> None:
    client.get("/set?a=1")
    assert "Set-Cookie" not in client.get("/set?b=2").headers


def test_tampered_cookie_gives_a_fresh_session_and_a_security_log(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    client.get("/set?a=1")
    value = session_cookie(client)
    assert value
    client.set_cookie("beaker.session.id", value[:-2] + "xx", domain="localhost")
    with caplog.at_level(logging.WARNING, logger="wsgisession.security"):
        assert client.get("/get").json == {}
    assert any("tampered" in r.message for r in caplog.records)
    session_id = value.rsplit(".", 1)[0]
    assert all(session_id not in r.getMessage() for r in caplog.records)


def test_unknown_signed_id_is_not_adopted(client: Client, manager: SessionManager) -> None:
    client.get("/set?a=1")
    value = session_cookie(client)
    assert value
    old_id = value.rsplit(".", 1)[0]
    client.get("/logout")
    client.set_cookie("beaker.session.id", value, domain="localhost")
    assert client.get("/set?b=2").json == {"b": "2"}
    new_value = session_cookie(client)
    assert new_value and not new_value.startswith(old_id)
    assert manager.store.read(old_id) is None


def test_logout_deletes_the_cookie_with_its_domain_and_path(client: Client) -> None:
    client.get("/set?a=1")
    response = client.get("/logout")
    header = response.headers["Set-Cookie"]
    assert "Max-Age=0" in header and "Domain=localhost" in header and "Path=/" in header
    assert client.get("/get").json == {}


def test_invalidate_and_rotate_send_a_new_cookie(client: Client, manager: SessionManager) -> None:
    client.get("/set?a=1")
    first = session_cookie(client)
    assert client.get("/invalidate").json == {"fresh": "1"}
    second = session_cookie(client)
    assert second and second != first
    client.get("/rotate")
    third = session_cookie(client)
    assert third and third != second
    assert client.get("/get").json == {"fresh": "1"}
    assert manager.store.read(str(second).rsplit(".", 1)[0]) is None


def test_store_down_answers_503_and_loses_nothing(make_manager: Callable[..., SessionManager], tmp_path: Any) -> None:
    port = free_port()  # nothing listens there: the store is down
    store = Store(type="ext:redis", url=f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    manager = SessionManager(store=store, fingerprint=Fingerprint(secret=SECRET))
    client = Client(SessionMiddleware(app, manager=manager, cookie=SessionCookie(secret=SECRET)))
    cookie = SessionCookie(secret=SECRET).sign("A" * 43)
    client.set_cookie("beaker.session.id", cookie, domain="localhost")
    response = client.get("/get")
    assert response.status_code == 503 and b"session store is unavailable" in response.data
    assert "Set-Cookie" not in response.headers  # nothing rotated or invalidated
    response = Client(SessionMiddleware(app, manager=manager, cookie=SessionCookie(secret=SECRET))).get("/set?a=1")
    assert response.status_code == 503


def test_a_lock_not_had_in_time_answers_503_with_retry_after(make_manager: Callable[..., SessionManager],
                                                             backend: str) -> None:
    manager = make_manager(backend, store_options={"lock_timeout": 0.05})
    client = Client(SessionMiddleware(app, manager=manager, cookie=COOKIE))
    client.get("/set?a=1")
    session_id = COOKIE.unsign(str(session_cookie(client)))
    holding = gevent.event.Event()

    def hold() -> None:
        with manager.store.transaction(session_id):  # as another request or process would
            holding.set()
            gevent.sleep(0.3)

    holder = gevent.spawn(hold)
    holding.wait()
    response = client.get("/incr")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert b"the session is busy" in response.data
    assert "Set-Cookie" not in response.headers  # nothing rotated or invalidated
    holder.join()
    assert client.get("/incr").status_code == 200
    assert client.get("/get").json == {"a": "1", "n": 1}


def test_a_session_that_ended_under_the_request_answers_409_not_a_traceback(
    client: Client, manager: SessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    client.get("/set?a=1")
    session_id = COOKIE.unsign(str(session_cookie(client)))
    with caplog.at_level(logging.INFO):
        response = client.get("/vanish-then-save")
    assert "answered 409" in caplog.text and session_id not in caplog.text  # a fingerprint, never the id
    assert response.status_code == 409 and b"the session ended while this request used it" in response.data
    assert "beaker.session.id=;" in response.headers["Set-Cookie"]  # the cookie is removed
    assert not [r for r in caplog.records if r.exc_info]  # no traceback logged as the app's bug
    assert client.get("/get").json == {}  # the next request starts afresh
