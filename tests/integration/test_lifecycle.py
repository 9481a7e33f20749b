"""SPEC rules 7-11: logout, rotation, expiry and rooms reach every socket, in every worker."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import socketio

from tests.helpers import LAB, close_transport, connect, cookie_header, lab_login, wait_until
from tests.servers import Server, gunicorn, redis_server, serve, write_ini


class SocketTab:
    """A socket.io client that records what the server tells it."""

    def __init__(self, base: str, cookie: str, *, transport: str = "websocket") -> None:
        self.ended: list[dict[str, Any]] = []
        self.notes: list[Any] = []
        self.client = connect(base, cookie=cookie, transport=transport)
        self.client.on("session_ended", self.ended.append)
        self.client.on("note", self.notes.append)

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()
        close_transport(self.client)  # if the server dropped it (a stopping server drops its connections)


@pytest.fixture
def tabs() -> Iterator[list[SocketTab]]:
    opened: list[SocketTab] = []
    yield opened
    for tab in opened:
        tab.close()


def open_tabs(server: Server, http: requests.Session, tabs: list[SocketTab], n: int = 2) -> list[SocketTab]:
    new = [SocketTab(server.url, cookie_header(http)) for _ in range(n)]
    tabs.extend(new)
    return new


def test_rule7_logout_ends_every_socket_of_the_session_only(lab_server: Server, tabs: list[SocketTab]) -> None:
    ann, bob = lab_login(lab_server), lab_login(lab_server, who="bob")
    ann_tabs, bob_tabs = open_tabs(lab_server, ann, tabs), open_tabs(lab_server, bob, tabs, 1)
    ann.get(lab_server.url + "/logout", timeout=10)
    for tab in ann_tabs:
        wait_until(lambda tab=tab: not tab.client.connected)  # type: ignore[misc]
        assert tab.ended == [{"reason": "logout"}]
    assert bob_tabs[0].client.connected and bob_tabs[0].client.call("get")["who"] == "bob"


def test_rule7_stale_handler_save_does_not_resurrect(lab_server: Server, tabs: list[SocketTab]) -> None:
    http = lab_login(lab_server)
    cookie = cookie_header(http)
    (tab,) = open_tabs(lab_server, http, tabs, 1)
    http.get(lab_server.url + "/logout", timeout=10)
    wait_until(lambda: not tab.client.connected)
    fresh = requests.get(lab_server.url + "/get", headers={"Cookie": cookie}, timeout=10)
    assert fresh.json() == {}


def test_rule8_rotation_rebinds_sockets_and_kills_the_old_id(lab_server: Server, tabs: list[SocketTab]) -> None:
    http = lab_login(lab_server)
    old_cookie = cookie_header(http)
    (tab,) = open_tabs(lab_server, http, tabs, 1)
    http.get(lab_server.url + "/rotate", timeout=10)
    assert cookie_header(http) != old_cookie
    http.get(lab_server.url + "/set", params={"after": "rotation"}, timeout=10)
    assert tab.client.call("get")["after"] == "rotation"  # the socket follows the new id
    tab.client.call("set", {"from_socket": 1})
    assert http.get(lab_server.url + "/get", timeout=10).json()["from_socket"] == 1
    assert requests.get(lab_server.url + "/get", headers={"Cookie": old_cookie}, timeout=10).json() == {}
    http.get(lab_server.url + "/emit", params={"msg": "still here"}, timeout=10)
    wait_until(lambda: tab.notes == ["still here"])


def test_rule10_emit_to_session_reaches_every_tab_and_no_other_session(lab_server: Server, tabs: list[SocketTab]) -> None:
    ann, bob = lab_login(lab_server), lab_login(lab_server, who="bob")
    ann_tabs, bob_tabs = open_tabs(lab_server, ann, tabs, 3), open_tabs(lab_server, bob, tabs, 1)
    assert len(ann.get(lab_server.url + "/sockets", timeout=10).json()) == 3
    ann.get(lab_server.url + "/emit", params={"msg": "hi ann"}, timeout=10)
    for tab in ann_tabs:
        wait_until(lambda tab=tab: tab.notes == ["hi ann"])  # type: ignore[misc]
    time.sleep(0.2)
    assert bob_tabs[0].notes == []
    ann.get(lab_server.url + "/kick", timeout=10)
    for tab in ann_tabs:
        wait_until(lambda tab=tab: tab.ended == [{"reason": "kicked"}])  # type: ignore[misc]


def test_rule10_room_names_never_contain_the_raw_id(lab_server: Server) -> None:
    http = lab_login(lab_server)
    session_id = cookie_header(http).split("=", 1)[1].rsplit(".", 1)[0]
    assert session_id not in lab_server.output()


@pytest.mark.slow
def test_rule9_idle_timeout_expires_silent_sockets_and_traffic_slides_it(
    ini_dir: Path, tabs: list[SocketTab]
) -> None:
    ini = write_ini(ini_dir, use=LAB, **{"beaker.session.timeout": 2, "wsgisession.touch_interval": 1,
                                         "wsgisession.sweep_interval": 0.5})
    with serve(ini) as server:
        quiet_http, busy_http = lab_login(server), lab_login(server, who="busy")
        reader_http = lab_login(server, who="reader")
        (quiet,) = open_tabs(server, quiet_http, tabs, 1)
        (busy,) = open_tabs(server, busy_http, tabs, 1)
        (reader,) = open_tabs(server, reader_http, tabs, 1)
        start = time.monotonic()
        while time.monotonic() - start < 4.5:
            assert busy.client.call("echo", "ping") == "ping"  # traffic that never reads the session
            assert reader.client.call("get")["who"] == "reader"  # reads it: its autosave writes the touch
            time.sleep(0.25)
        assert quiet.ended == [{"reason": "expired"}] and not quiet.client.connected
        assert busy.client.connected and busy.client.call("get")["who"] == "busy"
        assert reader.client.connected and reader.ended == []
        assert quiet_http.get(server.url + "/get", timeout=10).json() == {}


@pytest.mark.slow
def test_rule9_absolute_timeout_wins_over_traffic(ini_dir: Path, tabs: list[SocketTab]) -> None:
    ini = write_ini(ini_dir, use=LAB, **{"beaker.session.timeout": 60, "wsgisession.absolute_timeout": 2,
                                         "wsgisession.touch_interval": 1, "wsgisession.sweep_interval": 0.5})
    with serve(ini) as server:
        http = lab_login(server)
        (tab,) = open_tabs(server, http, tabs, 1)
        start = time.monotonic()
        while tab.client.connected and time.monotonic() - start < 5:
            try:
                tab.client.call("get", timeout=2)
            except socketio.exceptions.TimeoutError:
                pass
            time.sleep(0.2)
        assert tab.ended == [{"reason": "expired"}]
        assert 1.5 < time.monotonic() - start < 4.0


def spread_tabs(server: Server, http: requests.Session, tabs: list[SocketTab], workers: int) -> list[SocketTab]:
    """Open tabs until they are held by ``workers`` different processes."""
    opened: list[SocketTab] = []
    pids: set[int] = set()
    for _ in range(60):
        with ThreadPoolExecutor(4) as pool:
            batch = list(pool.map(lambda _: SocketTab(server.url, cookie_header(http)), range(4)))
        tabs.extend(batch)
        opened.extend(batch)
        pids |= {tab.client.call("whoami_pid") for tab in batch}
        if len(pids) >= workers:
            return opened
    raise AssertionError(f"the tabs reached only {len(pids)} of {workers} workers")


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("workers", [2])
def test_rule11_many_workers_logout_rotation_and_rooms(ini_dir: Path, tabs: list[SocketTab], workers: int) -> None:
    with redis_server(ini_dir) as url:
        ini = write_ini(ini_dir, use=LAB, **{"beaker.session.type": "ext:redis", "beaker.session.url": url,
                                             "socketio.message_queue": url})
        with gunicorn(ini, workers=workers) as server:
            http = lab_login(server)
            spread = spread_tabs(server, http, tabs, workers)
            http.get(server.url + "/rotate", timeout=10)
            http.get(server.url + "/set", params={"v": "rotated"}, timeout=10)
            assert all(tab.client.call("get")["v"] == "rotated" for tab in spread)
            http.get(server.url + "/emit", params={"msg": "all"}, timeout=10)
            for tab in spread:
                wait_until(lambda tab=tab: tab.notes == ["all"])  # type: ignore[misc]
            http.get(server.url + "/logout", timeout=10)
            for tab in spread:
                assert wait_until(lambda tab=tab: not tab.client.connected, timeout=1.0) < 1.0  # type: ignore[misc]
                assert tab.ended == [{"reason": "logout"}]


@pytest.mark.slow
def test_rule2_workers_on_the_sqlite_store_read_each_others_writes(ini_dir: Path, tabs: list[SocketTab]) -> None:
    """Each worker keeps the rows it read or committed while no other connection commits: a write by the
    other worker, over HTTP or a socket, is what every event reads next, round after round."""
    with gunicorn(write_ini(ini_dir, use=LAB), workers=2) as server:  # the default store, SQLite
        http = lab_login(server)
        spread = spread_tabs(server, http, tabs, 2)
        pids = {tab.client.call("whoami_pid"): tab for tab in spread}
        first, second = list(pids.values())[:2]
        for n in range(5):
            http.get(server.url + "/set", params={"v": f"http {n}"}, timeout=10)
            assert {tab.client.call("get")["v"] for tab in spread} == {f"http {n}"}
            for writer, reader in ((first, second), (second, first)):
                writer.client.call("set", {"v": f"socket {n}"})
                assert reader.client.call("get")["v"] == f"socket {n}", "the other worker's write"


@pytest.mark.redis
@pytest.mark.slow
def test_rule11_two_hosts_share_sessions_and_endings(ini_dir: Path, tabs: list[SocketTab]) -> None:
    """Two servers (think two hosts) on one Redis store and message queue."""
    with redis_server(ini_dir) as url:
        settings = {"beaker.session.type": "ext:redis", "beaker.session.url": url, "socketio.message_queue": url}
        with serve(write_ini(ini_dir, use=LAB, name="a.ini", **settings)) as host_a, \
                serve(write_ini(ini_dir, use=LAB, name="b.ini", **settings)) as host_b:
            http = lab_login(host_a)
            on_a = SocketTab(host_a.url, cookie_header(http))
            on_b = SocketTab(host_b.url, cookie_header(http))
            tabs.extend([on_a, on_b])
            http.get(host_a.url + "/set", params={"from": "a"}, timeout=10)
            assert on_b.client.call("get")["from"] == "a"
            http.get(host_a.url + "/emit", params={"msg": "to both"}, timeout=10)
            wait_until(lambda: on_a.notes == ["to both"] and on_b.notes == ["to both"])
            http.get(host_a.url + "/logout", timeout=10)
            assert wait_until(lambda: not on_b.client.connected, timeout=1.0) < 1.0
            assert on_b.ended == [{"reason": "logout"}]


@pytest.mark.slow
def test_rule9_expiry_found_on_the_next_event_without_a_sweep(ini_dir: Path, tabs: list[SocketTab]) -> None:
    ini = write_ini(ini_dir, use=LAB, **{"beaker.session.timeout": 1, "wsgisession.sweep_interval": 0})
    with serve(ini) as server:
        http = lab_login(server)
        (tab,) = open_tabs(server, http, tabs, 1)
        time.sleep(2.2)
        assert tab.client.connected and tab.ended == []  # nobody looked yet
        assert tab.client.call("get", timeout=5) == {"error": "session_ended", "reason": "expired"}
        wait_until(lambda: tab.ended == [{"reason": "expired"}] and not tab.client.connected)
