"""Rule 8's second half: a session made over a socket reaches the browser's cookie, safely.

The endpoint is driven through the composed app with Werkzeug's test client;
tokens are issued as the socket side issues them (``CookieExchange.issue``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from werkzeug.test import Client, TestResponse

from tests.helpers import SECRET, Clock
from wsgisession import make_app
from wsgisession.app import WsgiSessionApp
from wsgisession.session import SharedSession
from wsgisession.cookie_exchange import _record_id

ORIGIN = "http://localhost"  # Werkzeug's test client requests http://localhost/


@pytest.fixture(params=["memory", "sqlite", "file", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[WsgiSessionApp]:
    options: dict[str, Any] = {"type": request.param, "data_dir": str(tmp_path / "sessions")}
    if request.param == "redis":
        options["url"] = request.getfixturevalue("redis_url")
        request.getfixturevalue("redis_client")  # an empty database
    composed = make_app(None, secret=SECRET, clock=clock, sweep_interval=None, **options)
    yield composed
    composed.sockets.stop()


@pytest.fixture
def post(app: WsgiSessionApp) -> Callable[..., TestResponse]:
    def send(body: Any, *, origin: str | None = ORIGIN, **headers: str) -> TestResponse:
        if origin is not None:
            headers["Origin"] = origin
        client = Client(app)
        if isinstance(body, (bytes, str)):
            return client.post("/wsgisession/cookie", data=body, headers=headers, content_type="application/json")
        return client.post("/wsgisession/cookie", json=body, headers=headers)

    return send


def cookie_id(app: WsgiSessionApp, response: TestResponse) -> str:
    (header,) = response.headers.getlist("Set-Cookie")
    name, _, rest = header.partition("=")
    assert name == "beaker.session.id"
    assert "HttpOnly" in header and "SameSite=Lax" in header
    return app.cookie.unsign(rest.split(";")[0])


def test_rule8_a_token_is_traded_once_for_the_cookie_of_its_session(app: WsgiSessionApp, post: Any) -> None:
    session = SharedSession.create(app.manager)
    token = app.exchange.issue(session.id)
    response = post({"token": token})
    assert response.status_code == 204
    assert response.headers["Cache-Control"] == "no-store"
    assert cookie_id(app, response) == session.id
    replay = post({"token": token})
    assert (replay.status_code, replay.json) == (400, {"error": "bad_token"})
    assert "Set-Cookie" not in replay.headers


def test_rule8_the_store_keeps_a_hash_of_the_token_never_the_token(app: WsgiSessionApp) -> None:
    session = SharedSession.create(app.manager)
    token = app.exchange.issue(session.id)
    store = app.manager.store
    text = store.read(_record_id(token))
    assert text is not None and token not in text and session.id in text
    with pytest.raises(ValueError):  # the token itself is no key of the store
        store.read(token + "!")
    assert store.read(token) is None


def test_rule8_a_token_expires(app: WsgiSessionApp, post: Any, clock: Clock) -> None:
    token = app.exchange.issue(SharedSession.create(app.manager).id)
    clock.advance(app.exchange.ttl + 1)
    response = post({"token": token})
    assert (response.status_code, response.json) == (400, {"error": "expired_token"})
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "http://localhost:8080"},  # another port is another origin
        {"origin": "https://localhost"},
        {"origin": None, "Sec-Fetch-Site": "same-site"},
        {"origin": None, "Sec-Fetch-Site": "cross-site"},
        {"origin": None},  # neither header: not known to be a same-origin page
    ],
)
def test_rule8_only_a_same_origin_page_may_exchange(app: WsgiSessionApp, post: Any, headers: dict[str, Any]) -> None:
    token = app.exchange.issue(SharedSession.create(app.manager).id)
    refused = post({"token": token}, **headers)
    assert (refused.status_code, refused.json) == (403, {"error": "bad_origin"})
    assert "Set-Cookie" not in refused.headers
    assert post({"token": token}).status_code == 204  # a refused request did not use the token up


def test_rule8_a_same_origin_request_without_origin_is_known_by_fetch_metadata(app: WsgiSessionApp, post: Any) -> None:
    token = app.exchange.issue(SharedSession.create(app.manager).id)
    assert post({"token": token}, origin=None, **{"Sec-Fetch-Site": "same-origin"}).status_code == 204


@pytest.mark.parametrize(
    "body", [{}, {"token": 5}, {"token": "x" * 43 + "!"}, {"token": "a" * 43}, "not json", b"\xff", "[1]", "x" * 5000]
)
def test_rule8_a_malformed_or_unknown_token_is_refused(app: WsgiSessionApp, post: Any, body: Any) -> None:
    response = post(body)
    assert (response.status_code, response.json) == (400, {"error": "bad_token"})


def test_rule8_the_exchange_takes_post_only(app: WsgiSessionApp) -> None:
    response = Client(app).get("/wsgisession/cookie", headers={"Origin": ORIGIN})
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


def test_rule8_a_session_that_ended_before_the_exchange_gives_no_cookie(app: WsgiSessionApp, post: Any) -> None:
    session = SharedSession.create(app.manager)
    token = app.exchange.issue(session.id)
    session.delete()
    response = post({"token": token})
    assert (response.status_code, response.json) == (410, {"error": "unknown_session"})
    assert "Set-Cookie" not in response.headers


def test_rule8_the_cookie_from_an_exchange_carries_the_session_over_http(app: WsgiSessionApp, post: Any) -> None:
    session = SharedSession.create(app.manager)
    session["user"] = "ann"
    session.save()
    response = post({"token": app.exchange.issue(session.id)})
    value = response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    http = Client(app)
    http.set_cookie("beaker.session.id", value)
    environ: dict[str, Any] = {}

    def view(env: dict[str, Any], start_response: Any) -> list[bytes]:
        environ.update(env)
        start_response("200 OK", [])
        return [str(env["beaker.session"].get("user")).encode()]

    app.middleware.app = view
    assert http.get("/").get_data() == b"ann"


def test_the_client_script_is_served(app: WsgiSessionApp) -> None:
    response = Client(app).get("/wsgisession/client.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert b"keepCookie" in response.get_data() and b'credentials: "same-origin"' in response.get_data()
    assert "Set-Cookie" not in response.headers
