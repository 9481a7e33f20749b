"""The examples' own routes, in process (wsgisession.testclient): state changes take POST with a CSRF token."""
from __future__ import annotations

import re

from tests.helpers import SECRET
from wsgisession.testclient import TestClient

from examples.chat import app_factory as chat_factory


def csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None, "the page has no CSRF field"
    return match.group(1)


def test_chat_logs_out_only_by_its_forms_post() -> None:
    app = chat_factory({}, **{"beaker.session.secret": SECRET, "beaker.session.type": "memory",
                              "wsgisession.sweep_interval": "0"})
    client = TestClient(app)
    token = csrf(client.get("/").text)
    socket = client.socket()
    assert socket.call("set_profile", {"name": "ann", "feeling": "fine"})["name"] == "ann"
    assert client.get("/logout").status_code == 405  # an <img src=/logout> on any page does nothing
    assert client.post("/logout").status_code == 400  # no token
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 400
    assert socket.is_connected() and client.get("/session").json["name"] == "ann"  # nothing lost
    answer = client.post("/logout", data={"csrf": token})
    assert answer.status_code == 303
    assert socket.get_received()[-1] == {"name": "session_ended", "args": [{"reason": "logout"}], "namespace": "/"}
    assert client.get("/session").json == {}
    app.sockets.stop()
