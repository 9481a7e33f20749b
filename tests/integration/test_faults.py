"""SPEC "Faults": a store that is down refuses clearly, loses nothing, and recovers."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.helpers import LAB, connect, cookie_header, refusal, wait_until
from tests.servers import Redis, serve, write_ini

pytestmark = [pytest.mark.redis]


def test_store_down_refuses_clearly_loses_nothing_and_recovers(tmp_path: Path, redis: Redis) -> None:
    ini = write_ini(tmp_path, use=LAB,
                    **{"beaker.session.type": "ext:redis", "beaker.session.url": redis.url})
    with serve(ini) as server:
        http = requests.Session()
        http.get(server.url + "/set", params={"keep": "me"}, timeout=10).raise_for_status()
        cookie = cookie_header(http)
        client = connect(server.url, cookie=cookie)
        errors: list[dict[str, str]] = []
        client.on("session_error", errors.append)
        try:
            assert client.call("get") == {"keep": "me"}
            redis.stop()  # -- the store goes down --------------------------

            response = requests.get(server.url + "/get", headers={"Cookie": cookie}, timeout=10)
            assert response.status_code == 503 and "session store is unavailable" in response.text
            assert "Set-Cookie" not in response.headers  # nothing invalidated or rotated
            assert refusal(server.url, cookie=cookie) == "store_unavailable"
            assert client.call("get") == {"error": "store_unavailable"}  # the handler saw StoreUnavailable
            wait_until(lambda: errors == [{"reason": "store_unavailable"}])
            assert client.connected

            redis.start()  # -- and comes back ------------------------------
            assert client.call("get") == {"keep": "me"}
            assert requests.get(server.url + "/get", headers={"Cookie": cookie}, timeout=10).json() == {"keep": "me"}
            again = connect(server.url, cookie=cookie)
            assert again.call("get") == {"keep": "me"}
            again.disconnect()
        finally:
            client.disconnect()
    assert "Traceback" not in server.output()
