"""The WSGI side: cookies, lazy loading, autosave, 503 when the store is down."""
from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Callable

import gevent
import gevent.event
import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from tests.helpers import SECRET, tampered
from tests.servers import free_port
from wsgisession.cookies import SessionCookie
from wsgisession.ids import Fingerprint
from wsgisession.manager import SessionManager
from wsgisession.middleware import SessionMiddleware
from wsgisession.redis_client import RedisSettings
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
    client.set_cookie("beaker.session.id", tampered(value), domain="localhost")
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
    store = Store(type="ext:redis", url=f"redis://127.0.0.1:{port}/0",
                  redis=RedisSettings(socket_timeout=0.5, connect_timeout=0.5))
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


# -- Beaker's middleware behaviour (#19; Beaker's own tests: tests/beaker_upstream) ----
@Request.application  # type: ignore[arg-type]
def beaker_app(request: Request) -> Response:
    """Views as a Beaker app writes them: explicit save(), no autosave."""
    session = request.environ["beaker.session"]
    if request.path == "/save-then-change":
        session["a"] = "1"
        session.save()
        session["b"] = "2"  # after save(): kept, as Beaker saves at the end of the response
    elif request.path == "/save-then-raise":
        session["a"] = "changed"
        session.save()
        raise RuntimeError("the view fails after save()")
    elif request.path == "/change-only":
        session["a"] = "unsaved"
    elif request.path == "/delete":
        session.delete()
    elif request.path == "/domain":
        session.domain = request.args["domain"]
        session["seen"] = "1"
        session.save()
    elif request.path == "/other":
        other = request.environ["beaker.get_session"]()
        other["made"] = "elsewhere"
        other.save()
        return Response(other.id)
    return Response(json.dumps(dict(session)), mimetype="application/json")


def beaker_client(manager: SessionManager, cookie: SessionCookie = COOKIE) -> Client:
    manager.autosave = False  # Beaker's default (auto = false)
    return Client(SessionMiddleware(beaker_app, manager=manager, cookie=cookie))


def test_beaker_save_is_made_when_the_response_starts(manager: SessionManager) -> None:
    client = beaker_client(manager)
    client.get("/save-then-change")
    assert client.get("/get").json == {"a": "1", "b": "2"}
    client.get("/change-only")  # no save(), no autosave: nothing stored
    assert client.get("/get").json == {"a": "1", "b": "2"}


def test_beaker_a_view_that_raises_after_save_stores_nothing(manager: SessionManager) -> None:
    client = beaker_client(manager)
    client.get("/save-then-change")
    with pytest.raises(RuntimeError, match="after save"):
        client.get("/save-then-raise")
    assert client.get("/get").json == {"a": "1", "b": "2"}


def test_beaker_delete_without_a_client_cookie_sends_the_expiring_cookie(manager: SessionManager) -> None:
    header = beaker_client(manager).get("/delete").headers["Set-Cookie"]
    assert header.startswith("beaker.session.id=;") and "expires=Thu, 01-Jan-1970 00:00:00 GMT" in header


def test_beaker_setting_the_domain_moves_the_cookie(manager: SessionManager) -> None:
    client = beaker_client(manager)
    first = client.get("/domain?domain=.hoop.com", base_url="http://www.hoop.com")
    assert "Domain=.hoop.com;" in first.headers["Set-Cookie"]  # Beaker's leading dot kept
    cookie = client.get_cookie("beaker.session.id", domain=".hoop.com")
    assert cookie is not None
    browser = Client(client.application, use_cookies=False)  # (Werkzeug's jar does not match a leading dot)
    response = browser.get("/domain?domain=.other.com", base_url="http://www.hoop.com",
                           headers={"Cookie": f"beaker.session.id={cookie.value}"})
    assert "Domain=.other.com" in response.headers["Set-Cookie"]  # the same session's cookie, sent again
    assert COOKIE.unsign(response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]) == COOKIE.unsign(cookie.value)


@pytest.mark.parametrize(
    ("expires", "expected"),
    [(False, "expires=Tue, 19-Jan-2038 03:14:07 GMT"), (datetime.datetime(2030, 5, 22, tzinfo=datetime.timezone.utc),
                                                       "expires=Wed, 22-May-2030 00:00:00 GMT")],
)
def test_beaker_cookie_expires(manager: SessionManager, expires: Any, expected: str) -> None:
    cookie = SessionCookie(secret=SECRET, expires=expires)
    header = beaker_client(manager, cookie).get("/save-then-change").headers["Set-Cookie"]
    assert expected in header and "Max-Age" not in header


def test_beaker_get_session_makes_a_session_outside_the_request(manager: SessionManager) -> None:
    client = beaker_client(manager)
    response = client.get("/other")
    assert "Set-Cookie" not in response.headers  # not the request's session
    assert manager.read(response.get_data(as_text=True)).data == {"made": "elsewhere"}  # type: ignore[union-attr]


class _Body:
    """A streamed body that changes the session while the server reads it, and says when it is closed."""

    def __init__(self, session: Any, *, close_raises: bool = False) -> None:
        self.session = session
        self.close_raises = close_raises
        self.closed = False

    def __iter__(self) -> Any:
        yield b"one,"
        self.session["streamed"] = "yes"  # after the response started: saved when the body is closed
        yield b"two"

    def close(self) -> None:
        self.closed = True
        if self.close_raises:
            raise OSError("the body's own close failed")


def streaming_client(manager: SessionManager, bodies: list[_Body], *, close_raises: bool = False) -> Client:
    def streaming(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        session = environ["beaker.session"]
        if environ["PATH_INFO"] == "/get":
            body = json.dumps(dict(session)).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        session["started"] = "yes"
        start_response("200 OK", [("Content-Type", "text/plain")])
        bodies.append(_Body(session, close_raises=close_raises))
        return bodies[-1]

    return Client(SessionMiddleware(streaming, manager=manager, cookie=COOKIE))


def test_a_change_made_while_the_body_streams_is_saved_when_the_server_closes_it(manager: SessionManager) -> None:
    bodies: list[_Body] = []
    client = streaming_client(manager, bodies)
    response = client.get("/stream", buffered=True)  # read whole, then closed, as a server does
    assert response.get_data() == b"one,two"  # the body's own chunks, in order
    assert bodies[0].closed  # the body's own close() ran
    assert client.get("/get").json == {"started": "yes", "streamed": "yes"}


def test_the_save_at_close_runs_even_if_the_bodys_own_close_raises(manager: SessionManager) -> None:
    bodies: list[_Body] = []
    client = streaming_client(manager, bodies, close_raises=True)
    with pytest.raises(OSError, match="own close failed"):
        client.get("/stream", buffered=True)
    assert bodies[0].closed
    stored = manager.read(bodies[0].session.id)  # (the test client keeps no cookie of a request that raised)
    assert stored is not None and stored.data == {"started": "yes", "streamed": "yes"}


def test_a_late_request_with_the_cookie_from_before_a_login_does_not_remove_the_new_one(
    manager: SessionManager,
) -> None:
    """A request sent with the old cookie (a page's image, a second tab) and answered after the
    rotation must not clear the cookie: the browser would apply it after the new one and log out."""
    client = Client(SessionMiddleware(app, manager=manager, cookie=COOKIE))
    client.get("/set?a=1")
    before = session_cookie(client)
    client.get("/rotate")  # the login
    after = session_cookie(client)
    assert before and after and before != after
    late = Client(client.application, use_cookies=False)
    response = late.get("/get", headers={"Cookie": f"beaker.session.id={before}"})
    assert response.json == {}  # the old id loads nothing (never adopted)
    assert "Set-Cookie" not in response.headers
    assert client.get("/get").json == {"a": "1"}  # the logged-in session, untouched


def test_a_cookie_of_an_expired_or_unknown_session_gets_a_new_cookie_only_once_something_is_saved(
    manager: SessionManager,
) -> None:
    client = Client(SessionMiddleware(app, manager=manager, cookie=COOKIE))
    client.get("/set?a=1")
    stale = session_cookie(client)
    assert stale
    manager.store.remove(stale.rsplit(".", 1)[0])  # gone from the store (expired and swept, say)
    response = client.get("/get")
    assert response.json == {} and "Set-Cookie" not in response.headers  # nothing stored, nothing to say
    response = client.get("/set?b=2")
    fresh = session_cookie(client)
    assert fresh and fresh != stale and response.json == {"b": "2"}
    assert client.get("/logout").headers["Set-Cookie"].startswith("beaker.session.id=;")  # a logout still clears
