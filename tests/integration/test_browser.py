"""The chat example end to end in headless Chromium: one session for the page and its socket.

``tests/js/chat_browser.js`` drives Debian's ``/usr/bin/chromium`` with the
npm package ``playwright-core`` (no browser download) and reports what the
pages showed as JSON; screenshots go to ``tests/artifacts/``. ``docs/chat.png``
is ``chat-3-second-tab.png`` from a run of the "chat" scenario with the name
"Ann" and the feeling "happy".
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.browser import ARTIFACTS, node_and_chromium
from tests.helpers import CLIENT_JS, ROOT
from tests.servers import Server, serve, write_ini

pytestmark = pytest.mark.browser

DRIVER = ROOT / "tests" / "js" / "chat_browser.js"
POLL_AFTER_CLOSE = re.compile(r"tab\d+: 400 GET http://127\.0\.0\.1:\d+/socket\.io/\?EIO=4&transport=polling&t=[^&]+&sid=[\w-]+$")
NAME = "Zoë <b>&amp;"  # rendered as text by HTTP and by the page, never as markup
FEELING = "curious"


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    node, chromium = node_and_chromium()
    return {"node": node, "chromium": chromium}


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The chat example under ``wsgisession serve``, file store, the npm client."""
    directory = tmp_path_factory.mktemp("chat")
    with serve(write_ini(directory, use="call:examples.chat:app_factory", **{"chat.client_js": CLIENT_JS})) as server:
        yield server


def run_scenario(tools: dict[str, str], server: Server, tmp_path: Path, scenario: str) -> dict[str, Any]:
    options = {
        "scenario": scenario,
        "url": server.url,
        "chromium": tools["chromium"],
        "user_data_dir": str(tmp_path / "chromium-profile"),
        "artifacts": str(ARTIFACTS),
        "name": NAME,
        "feeling": FEELING,
        "timeout_ms": 90000,
        "launch_timeout_ms": 60000,  # Chromium's first launch after installing builds its caches
    }
    # its own process group, so that a hung run takes its Chromium down with it
    process = subprocess.Popen(
        [tools["node"], str(DRIVER), json.dumps(options)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=110)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    lines = stdout.strip().splitlines()
    assert lines, f"the driver printed nothing (exit {process.returncode}); stderr:\n{stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert result["ok"], (
        f"failed at {result['failed_step']!r}: {result['error']}\nobserved: "
        f"{json.dumps(result['observed'], indent=1)}\nserver log:\n{server.output()[-3000:]}"
    )
    assert process.returncode == 0
    console_errors = result["console_errors"]
    if scenario == "tampered" and all(POLL_AFTER_CLOSE.match(r) for r in result["failed_responses"]):
        # After the refusal the client closes its engine; a poll it had already sent can reach the
        # server after the close and is answered 400 (unknown sid), which Chromium logs as an error.
        console_errors = [e for e in console_errors if not e.endswith("status of 400 (BAD REQUEST)")]
    assert (result["page_errors"], console_errors) == ([], []), result["failed_responses"]
    return result


def test_chat_page_and_socket_share_one_session(tools: dict[str, str], chat_server: Server, tmp_path: Path) -> None:
    result = run_scenario(tools, chat_server, tmp_path, "chat")
    seen = result["observed"]
    # a first visit: HTTP started the session, the socket joined it
    assert seen["first_load"]["status"] == "connected"
    assert seen["transport"] == "websocket"  # the page's io() polled, then upgraded
    assert seen["first_load"]["http_name"] == ""
    assert "login_time" in seen["first_socket_says"]
    # rule 3: written over the socket, acked, then read over HTTP
    assert (seen["socket_says"]["name"], seen["socket_says"]["feeling"]) == (NAME, FEELING)
    assert (seen["http_says"]["name"], seen["http_says"]["feeling"]) == (NAME, FEELING)
    assert seen["http_says"]["login_time"] == seen["first_socket_says"]["login_time"]
    # a reload renders it server-side, escaped (text, not markup)
    reload = seen["after_reload"]
    assert (reload["http_name"], reload["http_feeling"], reload["name_input"]) == (NAME, FEELING, NAME)
    # a second tab of the same browser is the same session, over HTTP and over its socket
    assert seen["second_tab"]["http_name"] == NAME and seen["second_tab"]["status"] == "connected"
    assert seen["second_tab_socket_says"]["login_time"] == seen["first_socket_says"]["login_time"]
    # rule 7: logging out over HTTP in one tab ends the other tab's socket
    assert seen["second_tab_after_logout"]["status"] == "session ended: logout"
    # the logged-out tab is redirected to a fresh, empty session
    assert seen["first_tab_url_after_logout"] == chat_server.url + "/"
    assert seen["first_tab_after_logout"]["http_name"] == ""
    assert "name" not in seen["first_tab_after_logout_socket_says"]
    assert [Path(p).name for p in result["screenshots"]] == [
        "chat-1-connected.png", "chat-2-saved.png", "chat-3-second-tab.png", "chat-4-ended.png",
    ]


def test_chat_shows_a_refused_connection(tools: dict[str, str], chat_server: Server, tmp_path: Path) -> None:
    result = run_scenario(tools, chat_server, tmp_path, "tampered")
    seen = result["observed"]
    assert seen["original_cookie"] == {"name": "beaker.session.id", "httpOnly": True, "sameSite": "Lax"}
    # rule 1: the reconnecting socket carries the tampered cookie and is refused, visibly
    assert seen["refused"]["status"] == "refused: bad_signature"
    # a page load with the tampered cookie gets a new session, not the old one
    assert seen["after_reload"]["status"] == "connected"
    assert seen["after_reload"]["http_name"] == ""
    assert "name" not in seen["after_reload_socket_says"]
    assert seen["cookie_replaced"] is True
