"""SPEC rules 1, 2, 3 and 7 with the official JavaScript socket.io client (node).

The cookie comes from HTTP (Python requests); node connects with it through
``extraHeaders: {Cookie, Origin}``, as a browser page of the same origin
would, and ``tests/js/sio_driver.js`` reports what the client sees as JSON
lines while the test interleaves HTTP requests.
"""
from __future__ import annotations

import pytest
import requests

from tests.helpers import cookie_header, lab_data, lab_login
from tests.jsclient import TRANSPORTS, JsClient, node_binary
from tests.servers import Server

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def node() -> str:
    return node_binary()


def js_refusal(node: str, base: str, *, cookie: str | None, origin: str | None = "same",
               transport: str = "websocket") -> str:
    """The ``err.message`` of the client's ``connect_error``."""
    with JsClient(node, base, cookie=cookie, origin=origin, transport=transport) as client:
        message = client.next("connect", "connect_error", "timeout")
        assert message["type"] == "connect_error", f"not refused: {message}"
        code = client.close()
    assert code == 0
    return str(message["message"])


# -- rule 1: connect ----------------------------------------------------
@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_rule1_js_client_joins_the_http_session(node: str, lab_server: Server, transport: str) -> None:
    http = lab_login(lab_server, who="ann")
    with JsClient(node, lab_server.url, cookie=cookie_header(http), transport=transport) as client:
        client.connected()
        assert client.next("open")["transport"] == TRANSPORTS[transport][0]
        assert client.call("get")["who"] == "ann"
        if transport == "upgrade":
            assert client.next("upgrade")["transport"] == "websocket"
            assert client.call("get")["who"] == "ann"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_rule1_js_refused_without_cookie(node: str, lab_server: Server, transport: str) -> None:
    assert js_refusal(node, lab_server.url, cookie=None, transport=transport) == "no_cookie"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_rule1_js_refused_with_tampered_signature(node: str, lab_server: Server, transport: str) -> None:
    name, value = cookie_header(lab_login(lab_server)).split("=", 1)
    session_id, signature = value.rsplit(".", 1)
    forged = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    cookie = f"{name}={session_id}.{forged}"
    assert js_refusal(node, lab_server.url, cookie=cookie, transport=transport) == "bad_signature"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_rule1_js_refused_for_unknown_session(node: str, lab_server: Server, transport: str) -> None:
    http = lab_login(lab_server)
    cookie = cookie_header(http)
    http.get(lab_server.url + "/logout", timeout=10).raise_for_status()
    assert js_refusal(node, lab_server.url, cookie=cookie, transport=transport) == "unknown_session"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_rule1_js_refused_from_a_foreign_origin(node: str, lab_server: Server, transport: str) -> None:
    cookie = cookie_header(lab_login(lab_server))
    reason = js_refusal(node, lab_server.url, cookie=cookie, origin="http://evil.example", transport=transport)
    assert reason == "bad_origin"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_rule1_js_refused_with_a_cookie_but_no_origin(node: str, lab_server: Server, transport: str) -> None:
    cookie = cookie_header(lab_login(lab_server))
    assert js_refusal(node, lab_server.url, cookie=cookie, origin=None, transport=transport) == "bad_origin"


# -- rule 2: fresh on every event ---------------------------------------
@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_rule2_http_write_seen_by_next_js_event(node: str, lab_server: Server, transport: str) -> None:
    http = lab_login(lab_server)
    with JsClient(node, lab_server.url, cookie=cookie_header(http), transport=transport) as client:
        client.connected()
        for color in ("blue", "red"):
            http.get(lab_server.url + "/set", params={"color": color}, timeout=10).raise_for_status()
            assert client.call("get")["color"] == color


# -- rule 3: saved when changed -----------------------------------------
@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_rule3_js_event_write_seen_by_next_http_request(node: str, lab_server: Server, transport: str) -> None:
    http = lab_login(lab_server)
    with JsClient(node, lab_server.url, cookie=cookie_header(http), transport=transport) as client:
        client.connected()
        client.call("set", {"name": "Ann", "feeling": "fine"})
        data = lab_data(http, lab_server)  # while the socket is still open
        assert (data["name"], data["feeling"]) == ("Ann", "fine")
        client.call("nested", "pear")
        assert lab_data(http, lab_server)["cart"] == {"items": ["pear"]}


def test_rule3_js_client_in_a_class_based_namespace(node: str, lab_server: Server) -> None:
    http = lab_login(lab_server)
    with JsClient(node, lab_server.url, cookie=cookie_header(http), namespace="/lab") as client:
        client.connected()
        assert client.call("set", {"from_js": True})["lab_connects"] == 1
    data = lab_data(http, lab_server)
    assert data["from_js"] is True and data["lab_connects"] == 1


# -- rule 7: ended sessions stay ended ------------------------------------
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_rule7_logout_ends_the_js_socket(node: str, lab_server: Server, transport: str) -> None:
    http = lab_login(lab_server)
    with JsClient(node, lab_server.url, cookie=cookie_header(http), transport=transport) as client:
        client.connected()
        assert client.call("get")["who"] == "ann"
        http.get(lab_server.url + "/logout", timeout=10).raise_for_status()
        ended = client.next("event")
        assert (ended["event"], ended["args"]) == ("session_ended", [{"reason": "logout"}])
        assert client.next("disconnect")["reason"] == "io server disconnect"


# -- the counter example ------------------------------------------------
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_counter_example_with_the_js_client(node: str, counter_server: Server, transport: str) -> None:
    http = requests.Session()
    http.post(counter_server.url + "/login", params={"user": "ann"}, timeout=10).raise_for_status()
    with JsClient(node, counter_server.url, cookie=cookie_header(http), transport=transport) as client:
        client.connected()
        assert client.call("whoami") == "ann"
        assert http.post(counter_server.url + "/incr", timeout=10).text.strip() == "1"
        assert client.call("incr") == 2  # sees the HTTP write
        assert http.get(counter_server.url + "/n", timeout=10).text.strip() == "2"  # HTTP sees the event's
        assert client.call("echo", {"hi": [1, 2]}) == {"hi": [1, 2]}
    assert js_refusal(node, counter_server.url, cookie=None, transport=transport) == "no_cookie"
