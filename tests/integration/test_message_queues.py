"""Session endings, rotations and emit_to_session across hosts over a real RabbitMQ (Kombu), and a bad queue at start-up.

Two ``wsgisession serve`` processes (think two hosts) share a redis-server
store and a rabbitmq-server queue (``socketio.message_queue = amqp://...``);
python-socketio clients on each.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import LAB, close_transport, connect, cookie_header, lab_login, wait_until
from tests.servers import BIN, child_env, rabbitmq_server, redis_server, serve, write_ini

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.slow]


def test_endings_rotations_and_emits_cross_hosts_over_rabbitmq(tmp_path: Path) -> None:
    with redis_server(tmp_path) as store, rabbitmq_server(tmp_path) as queue:
        settings = {"beaker.session.type": "ext:redis", "beaker.session.url": store,
                    "socketio.message_queue": queue}
        with serve(write_ini(tmp_path, use=LAB, name="a.ini", **settings)) as host_a, \
                serve(write_ini(tmp_path, use=LAB, name="b.ini", **settings)) as host_b:
            http = lab_login(host_a, who="ann")
            on_a = connect(host_a.url, cookie=cookie_header(http))
            on_b = connect(host_b.url, cookie=cookie_header(http))
            notes: list[object] = []
            ended: list[object] = []
            on_b.on("note", notes.append)
            on_b.on("session_ended", ended.append)
            try:
                http.get(host_a.url + "/emit", params={"msg": "to every host"}, timeout=10).raise_for_status()
                wait_until(lambda: notes == ["to every host"], timeout=10.0)  # emit_to_session, over RabbitMQ
                http.get(host_a.url + "/rotate", timeout=10).raise_for_status()  # login: a new id
                http.get(host_a.url + "/set", params={"v": "after"}, timeout=10).raise_for_status()
                wait_until(lambda: on_b.call("get", timeout=10).get("v") == "after", timeout=10.0)  # b followed
                http.get(host_a.url + "/logout", timeout=10).raise_for_status()
                wait_until(lambda: bool(ended) and not on_b.connected, timeout=10.0)
                assert ended == [{"reason": "logout"}]
                wait_until(lambda: not on_a.connected, timeout=10.0)
            finally:
                for client in (on_a, on_b):
                    client.disconnect()
                    close_transport(client)
            for host in (host_a, host_b):
                assert "Traceback" not in host.output()


def test_an_unreachable_queue_stops_serve_at_start_naming_the_key(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, use=LAB, **{"socketio.message_queue": "amqp://guest:guest@127.0.0.1:1//"})
    result = subprocess.run([str(BIN / "wsgisession"), "serve", str(ini), "--port", "0"], capture_output=True,
                            text=True, timeout=60, env=child_env(), cwd=tmp_path)
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert "socketio.message_queue" in last and "cannot be reached" in last and "guest:guest" not in last
