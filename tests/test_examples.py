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


def test_pyramid_example_signs_in_counts_and_signs_out_by_post_with_pyramids_csrf_check() -> None:
    from examples.pyramid_app import main as pyramid_main

    app = pyramid_main({}, **{"session.secret": SECRET, "session.type": "memory", "wsgisession.sweep_interval": "0"})
    client = TestClient(app)
    page = client.get("/").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.refusal() is not None  # a visitor's socket: the app's connect handler refuses it
    form = {"user": "ann", "password": "ann-password"}
    assert client.post("/login", data=form).status_code == 400  # Pyramid's CSRF check
    assert client.post("/login", data={**form, "password": "wrong", "csrf_token": token}).status_code == 401
    assert client.post("/login", data={**form, "csrf_token": token}).status_code == 303
    page = client.get("/").text
    assert 'id="user">ann<' in page and "Welcome, ann." in page
    socket = client.socket()
    assert socket.call("whoami") == "ann"
    assert socket.call("incr") == 1
    assert client.post("/incr", data={"csrf_token": token}).json == {"n": 2}
    assert [m["args"] for m in socket.get_received()] == [[1], [2]]
    assert client.get("/api/me").json == {"user": "ann", "n": 2}
    assert client.post("/logout").status_code == 400  # no token: nothing ends
    assert socket.is_connected()
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert socket.get_received()[-1] == {"name": "session_ended", "args": [{"reason": "logout"}], "namespace": "/"}
    assert client.get("/api/me").json == {"user": None, "n": 0}
    app.sockets.stop()


def test_pyramid_example_lists_your_devices_and_signs_out_the_others() -> None:
    from examples.pyramid_app import main as pyramid_main

    app = pyramid_main({}, **{"session.secret": SECRET, "session.type": "memory", "wsgisession.sweep_interval": "0"})

    def sign_in(device: str) -> tuple[TestClient, str]:
        client = TestClient(app)
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)  # type: ignore[union-attr]
        form = {"user": "dora", "password": "dora-password", "device": device, "csrf_token": token}
        assert client.post("/login", data=form).status_code == 303
        return client, token

    from examples.pyramid_app import security

    security.USERS["dora"] = "dora-password"
    try:
        phone, phone_token = sign_in("Phone")
        laptop, laptop_token = sign_in("Laptop")
        tablet, _ = sign_in("Tablet")
        phone_socket, laptop_socket = phone.socket(), laptop.socket()
        listed = laptop.get("/api/devices").json["devices"]
        assert [(d["label"], d["sockets"], d["current"]) for d in listed] == \
            [("Phone", 1, False), ("Laptop", 1, True), ("Tablet", 0, False)]
        page = laptop.get("/").text
        assert page.count('class="device"') == 3 and "(this device)" in page
        tablet_handle = listed[2]["handle"]
        assert laptop.post("/devices/end", data={"handle": tablet_handle}).status_code == 400  # CSRF
        assert laptop.post("/devices/end", data={"handle": tablet_handle, "csrf_token": laptop_token}).status_code == 303
        assert tablet.get("/api/me").json == {"user": None, "n": 0}  # that device is signed out
        assert laptop.post("/devices/others", data={"csrf_token": laptop_token}).status_code == 303
        assert phone_socket.get_received()[-1]["args"] == [{"reason": "signed_out"}]
        assert not phone_socket.is_connected() and laptop_socket.is_connected()
        assert phone.get("/api/me").json["user"] is None
        assert [d["label"] for d in laptop.get("/api/devices").json["devices"]] == ["Laptop"]
        assert "Signed out 1 other device(s)." in laptop.get("/").text
        assert laptop_socket.call("whoami") == "dora"
        assert phone.post("/incr", data={"csrf_token": phone_token}).status_code in (400, 403)  # its session is gone
    finally:
        del security.USERS["dora"]
        app.sockets.stop()


def test_werkzeug_example_changes_state_only_by_a_post_no_other_site_sent() -> None:
    from examples.werkzeug_app import create_app

    app = create_app(secret=SECRET, type="memory", sweep_interval=None)
    client = TestClient(app)
    try:
        assert client.get("/login?user=ann").status_code == 405  # an <img src=...> logs nobody in
        assert client.post("/login?user=ann", headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.post("/login?user=ann", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert client.get("/").json == {}
        assert client.post("/login?user=ann").json == {"user": "ann"}  # curl: no Origin, no Sec-Fetch-Site
        socket = client.socket()
        assert client.post("/incr", headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}).json \
            == {"n": 1}
        assert client.get("/logout").status_code == 405
        assert client.post("/logout", headers={"Origin": "http://evil.example"}).status_code == 403
        assert socket.is_connected() and client.get("/").json == {"user": "ann", "n": 1}  # nothing lost
        assert client.post("/logout", headers={"Origin": "http://localhost"}).json == {"bye": True}
        assert socket.get_received()[-1]["args"] == [{"reason": "logout"}]
    finally:
        app.sockets.stop()


def test_counter_example_changes_state_only_by_a_post_no_other_site_sent() -> None:
    from examples.counter import app_factory as counter_factory

    app = counter_factory({}, **{"beaker.session.secret": SECRET, "beaker.session.type": "memory",
                                 "wsgisession.sweep_interval": "0"})
    client = TestClient(app)
    try:
        assert client.get("/login?user=ann").status_code == 405
        assert client.post("/login?user=ann", headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.post("/login?user=ann").text == "hello ann\n"  # curl -X POST
        socket = client.socket()
        assert client.post("/incr", headers={"Sec-Fetch-Site": "same-origin"}).text == "1\n"
        assert client.post("/incr", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert client.get("/logout").status_code == 405 and client.get("/n").text == "1\n"
        assert client.post("/logout", headers={"Origin": "http://evil.example"}).status_code == 403
        assert socket.is_connected()
        assert client.post("/logout", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "example.com",
                                                "Origin": "https://example.com"}).text == "bye\n"  # behind a proxy
        assert socket.get_received()[-1]["args"] == [{"reason": "logout"}]
    finally:
        app.sockets.stop()
