"""The Pyramid example on real servers, real clients, headless Chromium.

Started as its README says (``wsgisession serve conf/pyramid.ini``, gunicorn
with our worker), on one worker and on two behind a real redis-server (the
store and the message queue); driven by requests + python-socketio's client,
and by Chromium with the page's own ``io()``.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import socketio

from tests.browser import CLICK, ME, TEXT, Browser
from tests.helpers import ROOT, connect, cookie_header, wait_until
from tests.servers import Server, gunicorn, redis_server, serve

pytestmark = pytest.mark.integration


def readme_commands() -> list[str]:
    text = (ROOT / "examples" / "pyramid_app" / "README.rst").read_text(encoding="utf-8")
    return re.findall(r"^\s+\$ (.+)$", text, flags=re.MULTILINE)


def conf(directory: Path, **replace: str) -> Path:
    """conf/pyramid.ini copied under ``directory`` (its data lands there), ``[app:main]`` lines replaced or added."""
    target = directory / "conf" / "pyramid.ini"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "conf" / "pyramid.ini").read_text()
    for key, value in replace.items():
        line = f"{key} = {value}"
        text, found = re.subn(rf"^{re.escape(key)} =.*$", line, text, flags=re.MULTILINE)
        if not found:
            text = text.replace("[app:main]\n", f"[app:main]\n{line}\n", 1)
    target.write_text(text)
    return target


@contextlib.contextmanager
def start(command: str, directory: Path, *, workers: int = 1, **replace: str) -> Iterator[Server]:
    ini = conf(directory, **replace)
    if command == "wsgisession serve conf/pyramid.ini":
        with serve(ini) as server:
            yield server
    elif command == "gunicorn --paste conf/pyramid.ini -c conf/gunicorn.conf.py":
        with gunicorn(ini, workers=workers) as server:
            yield server
    else:
        raise AssertionError(f"this test does not know how to run {command!r}")


def csrf_of(http: requests.Session, base: str) -> str:
    page = http.get(base + "/", timeout=10).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def sign_in(http: requests.Session, base: str, user: str = "ann") -> None:
    answer = http.post(base + "/login", data={"csrf_token": csrf_of(http, base), "user": user,
                                              "password": f"{user}-password"}, timeout=10)
    assert answer.status_code == 200, answer.text  # after the redirect: the signed-in page
    assert 'id="user"' in answer.text and f"Welcome, {user}." in answer.text


COMMANDS = readme_commands()


def test_the_readme_names_both_servers() -> None:
    assert "wsgisession serve conf/pyramid.ini" in COMMANDS
    assert "gunicorn --paste conf/pyramid.ini -c conf/gunicorn.conf.py" in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_the_example_as_its_readme_runs_it(tmp_path: Path, command: str) -> None:
    with start(command, tmp_path) as server, requests.Session() as http:
        base = server.url
        anonymous = requests.Session()
        anonymous.get(base + "/", timeout=10)  # a visitor's session (its CSRF token), not signed in
        with pytest.raises(socketio.exceptions.ConnectionError):
            connect(base, cookie=cookie_header(anonymous))  # the app's connect handler refuses it
        assert http.post(base + "/login", data={"user": "ann", "password": "ann-password"},
                         timeout=10).status_code == 400  # Pyramid's CSRF check: no token
        sign_in(http, base)
        client = connect(base, cookie=cookie_header(http))
        counts: list[Any] = []
        ended: list[Any] = []
        client.on("count", counts.append)
        client.on("session_ended", ended.append)
        try:
            assert client.call("whoami", timeout=10) == "ann"  # request.authenticated_userid, from remember()
            assert client.call("incr", timeout=10) == 1
            assert http.get(base + "/api/me", timeout=10).json() == {"user": "ann", "n": 1}  # the event's write
            assert http.post(base + "/incr", data={"csrf_token": csrf_of(http, base)}, timeout=10).json() == {"n": 2}
            assert client.call("incr", timeout=10) == 3  # the view's write, seen by the next event
            wait_until(lambda: counts == [1, 2, 3], timeout=10.0)  # emit_to_session from both sides
            assert http.get(base + "/logout", timeout=10).status_code == 404  # POST only: no view for GET
            assert http.post(base + "/logout", data={"csrf_token": csrf_of(http, base)}, timeout=10).status_code == 200
            wait_until(lambda: bool(ended) and not client.connected, timeout=10.0)
            assert ended[0] == {"reason": "logout"}
            assert http.get(base + "/api/me", timeout=10).json() == {"user": None, "n": 0}
        finally:
            client.disconnect()
        assert "Traceback" not in server.output()


@pytest.mark.redis
def test_two_workers_share_sessions_and_logout_ends_sockets_on_both(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        command = "gunicorn --paste conf/pyramid.ini -c conf/gunicorn.conf.py"
        replace = {"session.type": "ext:redis", "session.url": url, "socketio.message_queue": url}
        with start(command, tmp_path, workers=2, **replace) as server, requests.Session() as http:
            base = server.url
            sign_in(http, base)
            clients = [connect(base, cookie=cookie_header(http)) for _ in range(8)]  # spread over both workers
            ended: list[Any] = []
            try:
                for client in clients:
                    client.on("session_ended", ended.append)
                assert {client.call("whoami", timeout=10) for client in clients} == {"ann"}
                for n, client in enumerate(clients, start=1):
                    assert client.call("incr", timeout=10) == n  # each event sees the last one's write
                assert http.get(base + "/api/me", timeout=10).json() == {"user": "ann", "n": 8}
                for _ in range(4):  # each request lands on either worker: the census counts both
                    (device,) = http.get(base + "/api/devices", timeout=10).json()["devices"]
                    assert device["sockets"] == 8 and device["current"] is True
                http.post(base + "/logout", data={"csrf_token": csrf_of(http, base)}, timeout=10)
                wait_until(lambda: len(ended) == 8 and not any(c.connected for c in clients), timeout=15.0)
            finally:
                for client in clients:
                    client.disconnect()
            assert len(set(re.findall(r"Booting worker with pid: (\d+)", server.output()))) == 2
            assert "Traceback" not in server.output()


# -- headless Chromium: the page as a user has it ----------------------------
SIGN_IN = """async ([user, password]) => {
  const csrf_token = document.querySelector('input[name=csrf_token]').value;
  const response = await fetch("/login", {method: "POST", body: new URLSearchParams({csrf_token, user, password})});
  return response.status;
}"""


@pytest.mark.browser
def test_in_chromium_a_logout_in_one_tab_ends_the_other_tabs_socket(tmp_path: Path) -> None:
    command = "gunicorn --paste conf/pyramid.ini -c conf/gunicorn.conf.py"
    with start(command, tmp_path) as server, Browser.launch() as browser:
        context = browser.context()
        first = context.tab()
        assert first.goto(server.url + "/") == 200
        assert first.run(SIGN_IN, ["ann", "ann-password"]) == 200
        assert first.goto(server.url + "/") == 200
        assert first.run(TEXT, ["status", "connected"]) == "connected"  # io(), default options
        assert first.run(TEXT, ["user", "ann"]) == "ann"
        second = context.tab()
        assert second.goto(server.url + "/") == 200
        assert second.run(TEXT, ["status", "connected"]) == "connected"
        first.run(CLICK, "incr")
        assert second.run(TEXT, ["count", "1"]) == "1"  # emit_to_session reached the other tab
        assert second.run(ME) == {"user": "ann", "n": 1}  # the socket's write, seen by HTTP
        first.run(CLICK, "logout")  # the form's POST, with its CSRF token
        assert second.run(TEXT, ["status", "session ended: logout"]) == "session ended: logout"
        assert first.wait_text("login", "Sign in") == "Sign in"  # back on the sign-in form, after the redirect
        assert second.run(ME) == {"user": None, "n": 0}
        assert browser.errors()["page_errors"] == []


DEVICES = "async () => (await fetch('/api/devices')).json()"
SIGN_IN_AS = """async ([user, password, device]) => {
  const csrf_token = document.querySelector('input[name=csrf_token]').value;
  const body = new URLSearchParams({csrf_token, user, password, device});
  return (await fetch("/login", {method: "POST", body})).status;
}"""


@pytest.mark.browser
def test_in_chromium_sign_out_other_devices_ends_their_tabs_and_keeps_this_one(tmp_path: Path) -> None:
    """Two browser contexts (two devices) and a third tab: "sign out other devices" on the laptop."""
    command = "gunicorn --paste conf/pyramid.ini -c conf/gunicorn.conf.py"
    with start(command, tmp_path) as server, Browser.launch() as browser:
        phone, laptop = browser.context(), browser.context()
        tabs = []
        for context, device in ((phone, "Phone"), (laptop, "Laptop")):
            tab = context.tab()
            assert tab.goto(server.url + "/") == 200
            assert tab.run(SIGN_IN_AS, ["ann", "ann-password", device]) == 200
            assert tab.goto(server.url + "/") == 200
            assert tab.run(TEXT, ["status", "connected"]) == "connected"
            tabs.append(tab)
        phone_tab, laptop_tab = tabs
        third = phone.tab()  # the phone's second tab: same device, same session
        assert third.goto(server.url + "/") == 200
        assert third.run(TEXT, ["status", "connected"]) == "connected"
        listed = laptop_tab.run(DEVICES)["devices"]
        assert [(d["label"], d["sockets"], d["current"]) for d in listed] == [("Phone", 2, False), ("Laptop", 1, True)]
        assert laptop_tab.goto(server.url + "/") == 200  # the page lists them too
        laptop_tab.run(CLICK, "others")  # the form's POST, with its CSRF token
        for tab in (phone_tab, third):
            assert tab.run(TEXT, ["status", "session ended: signed_out"]) == "session ended: signed_out"
            assert tab.run(ME) == {"user": None, "n": 0}  # the phone's cookie loads nothing now
        assert laptop_tab.wait_text("devices", "(this device)")
        assert laptop_tab.run(TEXT, ["status", "connected"]) == "connected"  # the laptop's socket lives on
        assert [d["label"] for d in laptop_tab.run(DEVICES)["devices"]] == ["Laptop"]
        assert browser.errors()["page_errors"] == []
