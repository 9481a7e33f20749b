"""SPEC rules 1-3 and the cookie and id rules, with real servers and real clients."""
from __future__ import annotations

import json
import time

import pytest
import requests

from tests.helpers import LAB, connect, cookie_header, lab_data, lab_login, refusal
from tests.servers import Server, gunicorn, serve, write_ini

TRANSPORTS = ["websocket", "polling", "upgrade"]


# -- rule 1: connect ----------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rule1_connect_joins_the_http_session(lab_server: Server, transport: str) -> None:
    http = lab_login(lab_server, who="ann")
    client = connect(lab_server.url, cookie=cookie_header(http), transport=transport)
    try:
        assert client.call("get")["who"] == "ann"
    finally:
        client.disconnect()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rule1_refused_without_cookie(lab_server: Server, transport: str) -> None:
    assert refusal(lab_server.url, transport=transport) == "no_cookie"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rule1_refused_with_tampered_signature(lab_server: Server, transport: str) -> None:
    http = lab_login(lab_server)
    name, value = cookie_header(http).split("=", 1)
    session_id, signature = value.rsplit(".", 1)
    forged = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert refusal(lab_server.url, cookie=f"{name}={session_id}.{forged}", transport=transport) == "bad_signature"


def test_rule1_refused_with_a_forged_unsigned_id(lab_server: Server) -> None:
    http = lab_login(lab_server)
    name, value = cookie_header(http).split("=", 1)
    assert refusal(lab_server.url, cookie=f"{name}={value.rsplit('.', 1)[0]}") == "bad_signature"


def test_rule1_refused_for_unknown_session(lab_server: Server) -> None:
    http = lab_login(lab_server)
    cookie = cookie_header(http)
    http.get(lab_server.url + "/logout", timeout=10)
    assert refusal(lab_server.url, cookie=cookie) == "unknown_session"


def test_rule1_refused_for_an_expired_session(ini_dir) -> None:  # type: ignore[no-untyped-def]
    ini = write_ini(ini_dir, use=LAB, **{"beaker.session.timeout": 1})
    with serve(ini) as server:
        http = lab_login(server)
        time.sleep(2.1)
        assert refusal(server.url, cookie=cookie_header(http)) == "expired"
        assert lab_data(http, server) == {}  # over HTTP: a fresh, empty session


def test_rule1_refused_without_origin_when_a_cookie_is_sent(lab_server: Server) -> None:
    http = lab_login(lab_server)
    assert refusal(lab_server.url, cookie=cookie_header(http), transport="polling", origin=None) == "bad_origin"


def test_rule1_refused_from_a_foreign_origin(lab_server: Server) -> None:
    http = lab_login(lab_server)
    reason = refusal(lab_server.url, cookie=cookie_header(http), transport="polling", origin="http://evil.example")
    assert reason == "bad_origin"


def test_rule1_anonymous_sockets_when_allowed(ini_dir) -> None:  # type: ignore[no-untyped-def]
    ini = write_ini(ini_dir, use=LAB, **{"wsgisession.allow_anonymous": "true"})
    with serve(ini) as server:
        client = connect(server.url)
        try:
            assert client.call("get") is None
        finally:
            client.disconnect()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_event_payloads_round_trip_exactly(lab_server: Server, transport: str) -> None:
    """Packets go through wsgisession.wirejson (orjson): integers past 64 bits, text and types stay exact."""
    http = lab_login(lab_server)
    client = connect(lab_server.url, cookie=cookie_header(http), transport=transport)
    payload = {"big": 2**70, "low": -(2**63) - 1, "text": "\u00e9\u20ac \U0001F600", "f": 0.1, "mix": [True, None, 1, 1.0]}
    try:
        assert repr(client.call("echo", payload)) == repr(payload)
    finally:
        client.disconnect()


# -- rule 2: fresh on every event ---------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rule2_http_write_seen_by_next_event(lab_server: Server, transport: str) -> None:
    http = lab_login(lab_server)
    client = connect(lab_server.url, cookie=cookie_header(http), transport=transport)
    try:
        http.get(lab_server.url + "/set", params={"color": "blue"}, timeout=10)
        assert client.call("get")["color"] == "blue"
        http.get(lab_server.url + "/set", params={"color": "red"}, timeout=10)
        assert client.call("get")["color"] == "red"
    finally:
        client.disconnect()


# -- rule 3: saved when changed -----------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rule3_event_write_seen_by_next_http_request(lab_server: Server, transport: str) -> None:
    http = lab_login(lab_server)
    client = connect(lab_server.url, cookie=cookie_header(http), transport=transport)
    try:
        client.call("set", {"name": "Ann", "feeling": "fine"})
    finally:
        client.disconnect()
    data = lab_data(http, lab_server)
    assert (data["name"], data["feeling"]) == ("Ann", "fine")


def test_rule3_nested_edit_saved(lab_server: Server) -> None:
    http = lab_login(lab_server)
    http.get(lab_server.url + "/nested", params={"item": "apple"}, timeout=10)
    client = connect(lab_server.url, cookie=cookie_header(http))
    try:
        assert client.call("nested", "pear")["cart"] == {"items": ["apple", "pear"]}
    finally:
        client.disconnect()
    assert lab_data(http, lab_server)["cart"] == {"items": ["apple", "pear"]}


def test_rule3_class_based_namespace_shares_the_session(lab_server: Server) -> None:
    http = lab_login(lab_server)
    client = connect(lab_server.url, cookie=cookie_header(http), namespaces=["/lab"])
    try:
        assert client.call("set", {"from_lab": 1}, namespace="/lab")["lab_connects"] == 1
    finally:
        client.disconnect()
    assert lab_data(http, lab_server)["from_lab"] == 1


def test_rule3_autosave_off_saves_only_on_explicit_save(ini_dir) -> None:  # type: ignore[no-untyped-def]
    ini = write_ini(ini_dir, use=LAB, **{"wsgisession.autosave": "false"})
    with serve(ini) as server:
        http = requests.Session()
        # with autosave off, HTTP saves nothing either: the lab's /set relies on it
        http.get(server.url + "/set", params={"a": "1"}, timeout=10)
        assert "Set-Cookie" not in http.get(server.url + "/get", timeout=10).headers
        ini2 = write_ini(ini_dir, name="on.ini", use=LAB)
    with serve(ini2) as on, serve(ini) as off:
        http = requests.Session()
        http.get(on.url + "/set", params={"a": "1"}, timeout=10)
        cookie = cookie_header(http)
        client = connect(off.url, cookie=cookie)
        try:
            client.call("set", {"lost": True})
            assert client.call("set_and_save", {"kept": True}) is True
        finally:
            client.disconnect()
        data = lab_data(http, on)
        assert data["kept"] is True and "lost" not in data


def test_a_handlers_session_has_the_views_beaker_api(lab_server: Server) -> None:
    other = lab_login(lab_server, theirs="yes")
    other_id = cookie_header(other).split("=", 1)[1].rsplit(".", 1)[0]
    http = lab_login(lab_server, who="ann")
    view = http.get(lab_server.url + "/beaker", params={"other": other_id}, timeout=10).json()
    client = connect(lab_server.url, cookie=cookie_header(http))
    try:
        handler = client.call("beaker", other_id)
    finally:
        client.disconnect()
    assert handler == view == {
        "created": True, "last_accessed": True, "truthy": True, "has_key": True, "copy": ["late", "n", "who"],
        "creation_key": True, "accessed": True, "by_id": {"theirs": "yes"}, "no_such_id": None, "dirty": True,
        "path": "/", "httponly": True, "cookie_expires": True,
    }
    assert lab_data(http, lab_server) == {"who": "ann", "n": 2, "late": "after"}  # both saves made at the end


def test_rule3_value_json_cannot_hold_fails_clearly_and_keeps_old_data(lab_server: Server) -> None:
    http = lab_login(lab_server, keep="me")
    client = connect(lab_server.url, cookie=cookie_header(http))
    try:
        message = client.call("unjsonable")
    finally:
        client.disconnect()
    assert message.startswith("SessionValueError") and "'bad'" in message
    assert lab_data(http, lab_server)["keep"] == "me"
    response = http.get(lab_server.url + "/unjsonable", timeout=10)
    assert response.status_code == 500
    assert lab_data(http, lab_server) == {"keep": "me"}


# -- cookies and ids ----------------------------------------------------
def test_malformed_unrelated_cookie_keeps_the_session(lab_server: Server) -> None:
    http = lab_login(lab_server, who="ann")
    cookie = "a=b c; " + cookie_header(http) + '; broken="x'
    response = requests.get(lab_server.url + "/get", headers={"Cookie": cookie}, timeout=10)
    assert response.json()["who"] == "ann"
    client = connect(lab_server.url, cookie=cookie)
    try:
        assert client.call("get")["who"] == "ann"
    finally:
        client.disconnect()


def test_forged_unsigned_id_is_not_adopted_over_http(lab_server: Server) -> None:
    forged = "A" * 43
    response = requests.get(lab_server.url + "/set", params={"x": "1"},
                            headers={"Cookie": f"beaker.session.id={forged}"}, timeout=10)
    issued = response.cookies.get("beaker.session.id")
    assert issued and not issued.startswith(forged)
    assert json.loads(response.text) == {"x": "1"}


def test_cookie_attributes(lab_server: Server) -> None:
    response = requests.get(lab_server.url + "/set", params={"x": "1"}, timeout=10)
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Cookie" in response.headers["Vary"]


def test_app_refuses_to_start_without_a_secret(ini_dir) -> None:  # type: ignore[no-untyped-def]
    ini = write_ini(ini_dir, **{"beaker.session.secret": None})
    with pytest.raises(RuntimeError, match="a secret is required"):
        with serve(ini):
            pass


# -- gunicorn -----------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_gunicorn_worker_shares_the_session(ini_dir, transport: str) -> None:  # type: ignore[no-untyped-def]
    with gunicorn(write_ini(ini_dir, use=LAB)) as server:
        http = lab_login(server, who="gun")
        client = connect(server.url, cookie=cookie_header(http), transport=transport)
        try:
            assert client.call("get")["who"] == "gun"
            client.call("set", {"via": transport})
        finally:
            client.disconnect()
        assert lab_data(http, server)["via"] == transport


# -- gevent's records of where greenlets were spawned; the loaded heap frozen ----------------------
def test_our_servers_do_not_record_where_greenlets_were_spawned(ini_dir) -> None:  # type: ignore[no-untyped-def]
    ini = write_ini(ini_dir, use=LAB)
    with serve(ini) as served, gunicorn(ini) as worker:
        for server in (served, worker):
            assert requests.get(server.url + "/spawns", timeout=10).json() == {
                "tracked": False, "stack": False, "frozen": True}


def test_gevents_environment_variable_keeps_the_records(ini_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GEVENT_TRACK_GREENLET_TREE", "1")  # the servers' environment is this process's
    ini = write_ini(ini_dir, use=LAB)
    with serve(ini) as served, gunicorn(ini) as worker:
        for server in (served, worker):
            assert requests.get(server.url + "/spawns", timeout=10).json() == {
                "tracked": True, "stack": True, "frozen": True}
