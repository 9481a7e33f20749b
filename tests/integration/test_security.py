"""Security rules with a real server: payload fuzzing, logs without raw ids."""
from __future__ import annotations

from typing import Any

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import connect, cookie_header, refusal
from tests.servers import Server

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=json_values, values=st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=3))
def test_fuzzed_socket_payloads_never_break_or_lose_the_session(lab_server: Server, payload: Any,
                                                               values: dict[str, Any]) -> None:
    http = requests.Session()
    http.get(lab_server.url + "/set", params={"anchor": "kept"}, timeout=10).raise_for_status()
    client = connect(lab_server.url, cookie=cookie_header(http))
    try:
        assert client.call("echo", payload, timeout=5) == payload
        client.call("nested", payload, timeout=5)  # wrong types may fail the handler: the server goes on
        client.call("nested", timeout=5)  # a missing argument too: the ack comes back empty
        result = client.call("set", values, timeout=5)
        if result is not None:
            assert result["anchor"] == "kept"
        assert client.call("get", timeout=5)["anchor"] == "kept"
    finally:
        client.disconnect()
    assert http.get(lab_server.url + "/get", timeout=10).json()["anchor"] == "kept"


def test_logs_never_contain_raw_session_ids(lab_server: Server) -> None:
    http = requests.Session()
    http.get(lab_server.url + "/set", params={"who": "ann"}, timeout=10)
    cookie = cookie_header(http)
    raw_id = cookie.split("=", 1)[1].rsplit(".", 1)[0]
    client = connect(lab_server.url, cookie=cookie)
    client.call("set", {"x": 1})
    client.disconnect()
    name = cookie.split("=", 1)[0]
    assert refusal(lab_server.url, cookie=f"{name}={raw_id}.AAAA") == "bad_signature"
    assert refusal(lab_server.url, cookie=cookie, transport="polling", origin="http://evil.example") == "bad_origin"
    http.get(lab_server.url + "/rotate", timeout=10)
    rotated_id = cookie_header(http).split("=", 1)[1].rsplit(".", 1)[0]
    http.get(lab_server.url + "/logout", timeout=10)
    output = lab_server.output()
    assert "wsgisession.security" in output and "bad_signature" in output and "evil.example" in output
    assert raw_id not in output and rotated_id not in output
