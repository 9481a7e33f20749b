"""The Flask example (a Flask-SocketIO + Flask-Login app) on real servers, real clients, headless Chromium.

Started as its README says (``wsgisession serve conf/flask.ini``, gunicorn with
our worker), on one worker and on two behind a real redis-server (the store and
Flask-SocketIO's ``message_queue``); driven by requests + python-socketio's
client, and by Chromium with the page's own ``io()``.
"""
from __future__ import annotations

import contextlib
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import socketio

from tests.browser import CLICK, ME, TEXT, Browser
from tests.helpers import ROOT, SECRET, connect, cookie_header, wait_until
from tests.servers import Server, gunicorn_app, redis_server, serve

pytestmark = pytest.mark.integration
COOKIE = "session"  # Flask's SESSION_COOKIE_NAME


def readme_commands() -> list[str]:
    text = (ROOT / "examples" / "flask_app" / "README.rst").read_text(encoding="utf-8")
    return re.findall(r"^\s+\$ (.+)$", text, flags=re.MULTILINE)


@contextlib.contextmanager
def start(command: str, directory: Path, env: dict[str, str], workers: int = 1) -> Iterator[Server]:
    """A README command, its data under ``directory``."""
    (directory / "conf").mkdir(exist_ok=True)
    if command == "wsgisession serve conf/flask.ini":
        ini = directory / "conf" / "flask.ini"
        shutil.copy(ROOT / "conf" / "flask.ini", ini)
        with contextlib.ExitStack() as stack:
            stack.enter_context(_environ(env))
            yield stack.enter_context(serve(ini))
    elif command == "gunicorn -c conf/gunicorn.conf.py examples.flask_app.app:app":
        with gunicorn_app("examples.flask_app.app:app", directory, env=env, workers=workers) as server:
            yield server
    else:
        raise AssertionError(f"this test does not know how to run {command!r}")


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """``serve`` takes its child's environment from this process's."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield


def sign_in(http: requests.Session, base: str, user: str = "ann") -> None:
    page = http.get(base + "/", timeout=10).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    answer = http.post(base + "/login", data={"csrf": csrf, "user": user, "password": f"{user}-password"},
                       timeout=10)
    assert answer.status_code == 200, answer.text  # after the redirect: the signed-in page
    assert 'id="user"' in answer.text


def csrf_of(http: requests.Session, base: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', http.get(base + "/", timeout=10).text).group(1)  # type: ignore[union-attr]


COMMANDS = readme_commands()


def test_the_readme_names_both_servers() -> None:
    assert any(c.startswith("wsgisession serve") for c in COMMANDS)
    assert any(c.startswith("gunicorn") for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_the_example_as_its_readme_runs_it(tmp_path: Path, command: str) -> None:
    with start(command, tmp_path, {"SESSION_SECRET": SECRET}) as server, requests.Session() as http:
        base = server.url
        anonymous = requests.Session()
        anonymous.get(base + "/", timeout=10)  # a visitor's session (its CSRF token), not signed in
        with pytest.raises(socketio.exceptions.ConnectionError):
            connect(base, cookie=cookie_header(anonymous))  # the app's connect handler refuses it
        sign_in(http, base)
        client = connect(base, cookie=cookie_header(http))
        counts: list[Any] = []
        ended: list[Any] = []
        client.on("count", counts.append)
        client.on("session_ended", ended.append)
        try:
            assert client.call("whoami", timeout=10) == "ann"  # current_user, from the login view
            assert client.call("incr", timeout=10) == 1
            assert http.get(base + "/api/me", timeout=10).json() == {"user": "ann", "n": 1}  # the event's write
            assert http.post(base + "/incr", data={"csrf": csrf_of(http, base)}, timeout=10).json() == {"n": 2}
            assert client.call("incr", timeout=10) == 3  # the view's write, seen by the next event
            wait_until(lambda: counts == [1, 2, 3], timeout=10.0)  # emit(..., to=room) from both sides
            assert http.get(base + "/logout", timeout=10).status_code == 405  # POST only
            assert http.post(base + "/logout", data={"csrf": csrf_of(http, base)}, timeout=10).status_code == 200
            wait_until(lambda: bool(ended) and not client.connected, timeout=10.0)
            assert ended[0] == {"reason": "logout"}
        finally:
            client.disconnect()
        assert "Traceback" not in server.output()


@pytest.mark.redis
def test_two_workers_share_sessions_and_logout_ends_sockets_on_both(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        env = {"SESSION_SECRET": SECRET, "FLASK_WSGISESSION_TYPE": "redis", "FLASK_WSGISESSION_URL": url,
               "FLASK_SOCKETIO_MESSAGE_QUEUE": url}
        with gunicorn_app("examples.flask_app.app:app", tmp_path, env=env, workers=2) as server, \
                requests.Session() as http:
            base = server.url
            sign_in(http, base)
            clients = [connect(base, cookie=cookie_header(http)) for _ in range(8)]  # spread over both workers
            ended: list[Any] = []
            try:
                for client in clients:
                    client.on("session_ended", ended.append)
                served_by = {client.call("whoami", timeout=10) for client in clients}
                assert served_by == {"ann"}
                for n, client in enumerate(clients, start=1):
                    assert client.call("incr", timeout=10) == n  # each event sees the last one's write
                assert http.get(base + "/api/me", timeout=10).json() == {"user": "ann", "n": 8}
                http.post(base + "/logout", data={"csrf": csrf_of(http, base)}, timeout=10)
                wait_until(lambda: len(ended) == 8 and not any(c.connected for c in clients), timeout=15.0)
            finally:
                for client in clients:
                    client.disconnect()
            pids = set(re.findall(r"Booting worker with pid: (\d+)", server.output()))
            assert len(pids) == 2
            assert "Traceback" not in server.output()


@pytest.mark.redis
def test_two_workers_lose_no_update_from_views_and_handlers(tmp_path: Path) -> None:
    """Rules 4 and 5 with Flask's idioms: flask.session.atomic() and merged saves, HTTP and events, 2 workers."""
    with redis_server(tmp_path) as url:
        env = {"SESSION_SECRET": SECRET, "FLASK_WSGISESSION_TYPE": "redis", "FLASK_WSGISESSION_URL": url,
               "FLASK_SOCKETIO_MESSAGE_QUEUE": url}
        with gunicorn_app("tests.flask_lab:app", ROOT, env=env, workers=2) as server, requests.Session() as http:
            base = server.url
            http.get(base + "/start", timeout=10).raise_for_status()
            cookie = cookie_header(http)
            clients = [connect(base, cookie=cookie) for _ in range(6)]
            try:
                jobs: list[Any] = []
                for i in range(30):
                    jobs.append(lambda: requests.get(base + "/incr", headers={"Cookie": cookie}, timeout=30))
                    jobs.append(lambda c=clients[i % 6]: c.call("incr", timeout=30))
                for i in range(12):
                    jobs.append(lambda i=i: requests.get(base + "/set", params={f"h{i}": str(i)},
                                                         headers={"Cookie": cookie}, timeout=30))
                    jobs.append(lambda i=i, c=clients[i % 6]: c.call("set", {f"s{i}": i}, timeout=30))
                with ThreadPoolExecutor(max_workers=24) as pool:
                    answers = list(pool.map(lambda job: job(), jobs))
                pids = {a.headers["X-Worker-Pid"] for a in answers if isinstance(a, requests.Response)}
                assert len(pids) == 2  # both workers served the HTTP side
                data = requests.get(base + "/", headers={"Cookie": cookie}, timeout=10).json()
                assert data["n"] == 60  # 30 HTTP + 30 event increments, none lost
                assert {f"h{i}" for i in range(12)} | {f"s{i}" for i in range(12)} <= set(data)
            finally:
                for client in clients:
                    client.disconnect()
            assert "Traceback" not in server.output()


# -- headless Chromium: the page as a user has it ----------------------------
SIGN_IN = """async ([user, password]) => {
  const csrf = document.querySelector('input[name=csrf]').value;
  const response = await fetch("/login", {method: "POST", body: new URLSearchParams({csrf, user, password})});
  return response.status;
}"""
TRANSPORT = "() => socket.io.engine.transport.name"


@pytest.mark.browser
def test_in_chromium_a_logout_in_one_tab_ends_the_other_tabs_socket(tmp_path: Path) -> None:
    command = "gunicorn -c conf/gunicorn.conf.py examples.flask_app.app:app"
    with start(command, tmp_path, {"SESSION_SECRET": SECRET}) as server, Browser.launch() as browser:
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
        assert second.run(TEXT, ["count", "1"]) == "1"  # emit(..., to=current_user.id) reached the other tab
        assert second.run(ME) == {"user": "ann", "n": 1}  # the socket's write, seen by HTTP
        first.run(CLICK, "logout")  # the form's POST, with its CSRF token
        assert second.run(TEXT, ["status", "session ended: logout"]) == "session ended: logout"
        assert first.wait_text("login", "Sign in") == "Sign in"  # back on the sign-in form, after the redirect
        assert context.cookie(server.url, name=COOKIE) is None or second.run(ME)["user"] is None
        assert browser.errors()["page_errors"] == []
