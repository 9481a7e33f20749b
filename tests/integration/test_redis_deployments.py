"""The contract on every managed-Redis form, each on real servers this module starts on 127.0.0.1.

For each store URL (``rediss://`` on a certificate made with openssl, ``unix://``,
an ACL user limited to the prefix's keys and the commands docs/configuration.rst
lists, ``redis+sentinel://`` with a primary, a replica and redis-sentinel, each
asking for a password (the sentinel for one of its own), the same three on TLS
only, and a Redis Cluster of three primaries) the message queue runs on the same Redis, and
two gunicorn workers serve tests/lost_updates_app.py. One test per form walks the
session rules across the two workers: refusals, fresh reads both ways, lost
updates (rules 4 and 5), emit_to_session, rotation and logout reaching the other
worker's sockets, and where the keys are (one prefix, one hash tag, a TTL);
another, on one server, a dead holder's lock and the idle timeout.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
import redis.cluster
import requests

from tests.helpers import (
    ROOT, SECRET, all_at_once, counter_cookie, check_increments, connect, disconnect, get, http_job, new_session, refusal, socket_job, split,
    spread_sockets, wait_until,
)
from tests.servers import Cluster, Redis, Sentinel, gunicorn, make_certificates, serve, write_ini
from examples.counter import counter_app
from werkzeug.test import Client
from wsgisession import make_app
from wsgisession.errors import ConfigurationError
from wsgisession.ids import new_session_id
from wsgisession.manager import EXPIRED_KEPT
from wsgisession.store import Store

pytestmark = [pytest.mark.redis, pytest.mark.slow]

APP = "call:tests.lost_updates_app:app_factory"
PASSWORD = "s3cret-of-the-app"
SENTINEL_PASSWORD = "s3cret-of-the-sentinels"


def acl_line(prefix: str, channel: str) -> str:
    """The ACL line docs/configuration.rst gives, for user ``shop`` with ``prefix`` and the queue's ``channel``."""
    docs = (ROOT / "docs" / "configuration.rst").read_text()
    line = next(line.strip() for line in docs.splitlines() if line.strip().startswith("user wsgisession on "))
    assert "~wsgisession:*" in line and "&socketio" in line and ">PASSWORD" in line
    return (line.replace("user wsgisession on", "user shop on").replace(">PASSWORD", f">{PASSWORD}")
            .replace("~wsgisession:*", f"~{prefix}*").replace("&socketio", f"&{channel}"))


class Deployment:
    """One Redis form: the INI settings of the store and the queue, and an admin client to look at the keys."""

    def __init__(self, settings: dict[str, Any], admin: Any, prefix: str = "wsgisession:") -> None:
        self.settings = {"beaker.session.type": "ext:redis", "beaker.session.data_dir": None,
                         "beaker.session.timeout": 3600, **settings}
        self.admin = admin
        self.prefix = prefix


@contextlib.contextmanager
def deployment_of(form: str, directory: Path) -> Iterator[Deployment]:
    if form == "tls":
        certs = make_certificates(directory / "certs")
        server = Redis(directory, tls=certs)
        server.start()
        try:
            yield Deployment({"beaker.session.url": server.url, "wsgisession.redis_ssl_cert_reqs": "required",
                              "wsgisession.redis_ssl_ca_certs": str(certs.ca),
                              "socketio.message_queue": f"{server.url}?ssl_ca_certs={certs.ca}"},
                             redis.Redis.from_url(server.url, ssl_ca_certs=str(certs.ca)))
        finally:
            server.stop()
    elif form == "unix":
        server = Redis(directory, unix=True)
        server.start()
        try:
            yield Deployment({"beaker.session.url": server.url, "socketio.message_queue": server.url},
                             redis.Redis.from_url(server.url))
        finally:
            server.stop()
    elif form == "acl":
        server = Redis(directory, config=(acl_line("shop:", "shop"), "user admin on >admin ~* &* +@all",
                                          "user default off"))
        server.start()
        url = f"redis://shop:{PASSWORD}@127.0.0.1:{server.port}/0"
        try:
            yield Deployment({"beaker.session.url": url, "wsgisession.redis_prefix": "shop:",
                              "socketio.message_queue": url, "socketio.channel": "shop"},
                             redis.Redis(port=server.port, username="admin", password="admin"), prefix="shop:")
        finally:
            server.stop()
    elif form == "sentinel":
        sentinel = Sentinel(directory, password=PASSWORD, sentinel_password=SENTINEL_PASSWORD)
        sentinel.start()
        try:
            yield Deployment({"beaker.session.url": sentinel.url, "socketio.message_queue": sentinel.url,
                              "wsgisession.redis_sentinel_password": SENTINEL_PASSWORD},
                             redis.Redis(port=sentinel.primary.port, password=PASSWORD))
        finally:
            sentinel.stop()
    elif form == "sentinel-tls":
        certs = make_certificates(directory / "certs")
        sentinel = Sentinel(directory, tls=certs)
        sentinel.start()
        try:
            yield Deployment({"beaker.session.url": sentinel.url, "socketio.message_queue": sentinel.url,
                              "wsgisession.redis_sentinel_tls": "true", "wsgisession.redis_ssl_ca_certs": str(certs.ca)},
                             redis.Redis("127.0.0.1", sentinel.primary.port, **sentinel.client_tls()))
        finally:
            sentinel.stop()
    elif form == "cluster":
        cluster = Cluster(directory)
        cluster.start()
        try:
            yield Deployment({"beaker.session.url": cluster.url, "wsgisession.redis_cluster": "true",
                              "socketio.message_queue": cluster.url},
                             redis.cluster.RedisCluster.from_url(cluster.url))
        finally:
            cluster.stop()
    elif form == "cluster-acl":  # the ACL line, plus what a Cluster client reads: the slot map, the command table
        cluster = Cluster(directory, config=(acl_line("shop:", "shop") + " +cluster|slots +command",
                                             "user admin on >admin ~* &* +@all", "user default off"),
                          admin="admin:admin")
        cluster.start()
        url = f"redis://shop:{PASSWORD}@127.0.0.1:{cluster.nodes[0].port}/0"
        try:
            yield Deployment({"beaker.session.url": url, "wsgisession.redis_cluster": "true",
                              "wsgisession.redis_prefix": "shop:", "socketio.message_queue": url,
                              "socketio.channel": "shop"},
                             redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port, username="admin",
                                                        password="admin"), prefix="shop:")
        finally:
            cluster.stop()
    else:
        raise AssertionError(form)


@pytest.fixture(scope="module", params=["tls", "unix", "acl", "sentinel", "sentinel-tls", "cluster", "cluster-acl"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment_of(request.param, tmp_path_factory.mktemp(request.param)) as made:
        try:
            yield made
        finally:
            made.admin.close()  # before its server stops: a socket left open is a ResourceWarning later


def test_the_session_rules_hold_across_two_workers(deployment: Deployment, tmp_path: Path) -> None:
    with gunicorn(write_ini(tmp_path, use=APP, **deployment.settings), workers=2) as server:
        # rule 1: no cookie, no socket; the store answers the handshake
        assert refusal(server.url) == "no_cookie"
        cookie, session_id = new_session(server.url)
        clients = spread_sockets(server.url, cookie, 2)
        try:
            pids = Counter(client.call("pid", timeout=10) for client in clients)
            assert len(pids) == 2, f"sockets on both workers: {dict(pids)}"
            # rules 2 and 3: what HTTP wrote the sockets read, and back
            http_job(server.url, cookie, "/set", by_http="1")()
            assert all(client.call("get", timeout=10)["by_http"] == "1" for client in clients)
            clients[0].call("set", {"by_socket": 2}, timeout=10)
            assert get(server.url, cookie)["by_socket"] == 2
            # rules 4 and 5: nothing lost from HTTP and sockets on both workers at once
            outcome = check_increments(server.url, cookie, clients, "incr_slow")
            assert len(outcome["pids"]) == 2
            http_jobs = [http_job(server.url, cookie, "/set_slow", **{f"h{i}": str(i)}) for i in range(20)]
            event_jobs = [socket_job(c, "set_slow", [{f"s{n}_{i}": i} for i in range(k)])
                          for n, (c, k) in enumerate(zip(clients, split(20, len(clients))))]
            all_at_once([*http_jobs, *event_jobs])
            data = get(server.url, cookie)
            assert all(data[f"h{i}"] == str(i) for i in range(20)) and data["who"] == "ann"
            assert sum(1 for key in data if key.startswith("s") and "_" in key) == 20
            # the keys: one prefix, the id as hash tag, an expiry; the lock is gone
            key = f"{deployment.prefix}{{{session_id}}}:session"
            assert 3600 < deployment.admin.ttl(key) <= 3601 + EXPIRED_KEPT  # the idle timeout, and the sweep's margin
            assert not deployment.admin.exists(f"{deployment.prefix}{{{session_id}}}:lock")
            # rule 10: emit_to_session reaches the sockets of both workers
            notes: list[Any] = []
            for client in clients:
                client.on("note", notes.append)
            http_job(server.url, cookie, "/emit", msg="hello")()
            wait_until(lambda: len(notes) == len(clients), timeout=5)
            # rule 8: rotation; the old cookie loads nothing, the sockets follow
            with requests.Session() as http:
                http.headers["Cookie"] = cookie
                rotated = http.get(server.url + "/rotate", timeout=10)
                rotated.raise_for_status()
                new_cookie = cookie.split("=", 1)[0] + "=" + rotated.cookies[cookie.split("=", 1)[0]]
            assert "who" not in requests.get(server.url + "/get", headers={"Cookie": cookie}, timeout=10).json()
            http_job(server.url, new_cookie, "/set", after="rotation")()
            wait_until(lambda: all(c.call("get", timeout=10).get("after") == "rotation" for c in clients), timeout=5)
            # rule 7: logout on one worker ends the sockets of both
            ended: list[Any] = []
            for client in clients:
                client.on("session_ended", ended.append)
            requests.get(server.url + "/logout", headers={"Cookie": new_cookie}, timeout=10).raise_for_status()
            wait_until(lambda: len(ended) == len(clients) and not any(c.connected for c in clients), timeout=5)
            assert refusal(server.url, cookie=new_cookie) == "unknown_session"
        finally:
            disconnect(clients)
        assert "Traceback" not in server.output()
        assert session_id not in server.output() and PASSWORD not in server.output()


def burst(base: str, path: str, cookie: str, count: int, spacing: float = 0.0005) -> list[int]:
    """``count`` requests sent ``spacing`` seconds apart, each on a connection of its own opened beforehand (so
    they reach the server over several turns of its event loop); their status codes."""
    host, port = base.rsplit("/", 1)[-1].rsplit(":", 1)
    sockets = [socket.create_connection((host, int(port)), timeout=10) for _ in range(count)]
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        for sock in sockets:
            sock.sendall(request.encode())
            time.sleep(spacing)
        codes = []
        for sock in sockets:
            with sock.makefile("rb") as answer:
                codes.append(int(answer.readline().split()[1]))
        return codes
    finally:
        for sock in sockets:
            sock.close()


def test_requests_arriving_together_after_a_pause_all_get_their_answer(deployment: Deployment, tmp_path: Path) -> None:
    """The store's connection sits idle past its check, then many requests come at once.

    The check once switched greenlets (hiredis's can_read() polls through gevent's patched
    select): the requests behind it sent their commands meanwhile, and the check took the
    replies for a closed connection and broke it under them (503s).
    """
    with serve(write_ini(tmp_path, use=APP, **deployment.settings)) as server:
        cookie, _ = new_session(server.url)
        for _ in range(3):
            time.sleep(1.2)  # idle past redis_commands._IDLE_CHECK
            assert burst(server.url, "/get", cookie, 50) == [200] * 50
        assert "Traceback" not in server.output() and "unavailable" not in server.output()


def test_a_users_devices_across_two_workers(deployment: Deployment, tmp_path: Path) -> None:
    """#22 on each form: the per-user index is one key under the prefix, in its own hash tag (a Cluster slot)."""
    from wsgisession.users import index_id

    with gunicorn(write_ini(tmp_path, use=APP, **deployment.settings), workers=2) as server:
        user = f"dev-{os.getpid()}-{time.monotonic_ns()}"
        cookies = []
        for label in ("phone", "laptop"):
            cookie, _ = new_session(server.url)
            with requests.Session() as http:
                http.headers["Cookie"] = cookie
                bound = http.get(server.url + "/bind", params={"user": user, "label": label}, timeout=10)
                bound.raise_for_status()
                name = cookie.split("=", 1)[0]
                cookies.append(f"{name}={bound.cookies[name]}")
        phone, laptop = cookies
        phone_sockets = spread_sockets(server.url, phone, 2)
        laptop_sockets = spread_sockets(server.url, laptop, 2)
        ended: list[Any] = []
        for client in phone_sockets:
            client.on("session_ended", ended.append)
        try:
            assert len(Counter(c.call("pid", timeout=10) for c in phone_sockets + laptop_sockets)) == 2
            for _ in range(3):  # either worker answers: the census counts the sockets of both
                listed = requests.get(server.url + "/devices", headers={"Cookie": laptop}, timeout=10).json()
                assert [(d["label"], d["sockets"], d["current"]) for d in listed] == \
                    [("phone", len(phone_sockets), False), ("laptop", len(laptop_sockets), True)]
            key = f"{deployment.prefix}{{{index_id(user)}}}:session"
            assert deployment.admin.exists(key)
            answer = requests.get(server.url + "/others", headers={"Cookie": laptop}, timeout=10).json()
            assert answer == {"ended": 1}
            wait_until(lambda: len(ended) == len(phone_sockets) and not any(c.connected for c in phone_sockets),
                       timeout=5)
            assert ended[0] == {"reason": "signed_out"}
            assert all(c.connected for c in laptop_sockets)
            assert refusal(server.url, cookie=phone) == "unknown_session"
            requests.get(server.url + "/logout", headers={"Cookie": laptop}, timeout=10).raise_for_status()
            assert not deployment.admin.exists(key)  # the last session gone: the index too
        finally:
            disconnect(phone_sockets + laptop_sockets)
        assert "Traceback" not in server.output()


def test_expiry_and_a_dead_holders_lock(deployment: Deployment, tmp_path: Path) -> None:
    """Rules 6 and 9: a lock left by a holder that died frees within its TTL; an idle session expires."""
    settings = {**deployment.settings, "beaker.session.timeout": 2, "wsgisession.touch_interval": 1,
                "wsgisession.sweep_interval": 0.5, "wsgisession.lock_ttl": 1, "wsgisession.lock_timeout": 5}
    with serve(write_ini(tmp_path, use=APP, **settings)) as server:
        cookie, session_id = new_session(server.url)
        lock = f"{deployment.prefix}{{{session_id}}}:lock"
        deployment.admin.set(lock, "a holder that died", px=1000)  # as a SIGKILLed worker leaves it
        started = time.monotonic()
        assert http_job(server.url, cookie, "/incr")()[1]["n"] == 1
        assert 0.5 < time.monotonic() - started < 3, "waited for the dead holder's lock to expire, no longer"
        client = connect(server.url, cookie=cookie)
        ended: list[Any] = []
        client.on("session_ended", ended.append)
        try:
            wait_until(lambda: bool(ended) and not client.connected, timeout=6)
            assert ended == [{"reason": "expired"}]
        finally:
            client.disconnect()
        assert "who" not in get(server.url, cookie)
    assert "Traceback" not in server.output()


def test_conf_production_ini_runs_on_a_sentinel_url(tmp_path: Path) -> None:
    """conf/production.ini as shipped, with one REDIS_URL = redis+sentinel://... for the store and the queue."""
    ini = tmp_path / "production.ini"
    shutil.copy(ROOT / "conf" / "production.ini", ini)
    sentinel = Sentinel(tmp_path / "redis")
    sentinel.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SESSION_SECRET", SECRET)
            env.setenv("REDIS_URL", sentinel.url)
            with gunicorn(ini, workers=2) as server:
                cookie = counter_cookie(server.url, "ann")
                clients = all_at_once([lambda: connect(server.url, cookie=cookie, transport="websocket")] * 4)
                try:
                    assert sorted(all_at_once([lambda c=c: c.call("incr", timeout=10) for c in clients])) == [1, 2, 3, 4]
                    response = requests.get(server.url + "/n", headers={"Cookie": cookie}, timeout=10)
                    assert response.text.strip() == "4"
                finally:
                    disconnect(clients)
        assert "Traceback" not in server.output()
    finally:
        sentinel.stop()


def test_sentinels_that_ask_for_a_password_refuse_a_missing_or_wrong_one_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Sentinels with requirepass of their own (Bitnami's chart sets it by default): without the right
    wsgisession.redis_sentinel_password the queue is refused at start-up and the store answers 503, each
    saying which setting is missing or wrong; with it, a session is stored."""
    sentinel = Sentinel(tmp_path / "redis", password=PASSWORD, sentinel_password=SENTINEL_PASSWORD)
    sentinel.start()
    try:
        store = {"secret": SECRET, "type": "ext:redis", "url": sentinel.url}
        for given, why in (({}, "the sentinels ask for a password of their own"),
                           ({"redis_sentinel_password": "not-theirs"}, "the sentinels refused")):
            with pytest.raises(ConfigurationError, match=why) as caught:
                make_app(counter_app, **store, **given, socketio_options={"message_queue": sentinel.url})
            assert caught.value.key == "socketio.message_queue" and PASSWORD not in str(caught.value)
            caplog.clear()
            app = make_app(counter_app, **store, **given)
            response = Client(app).post("/login?user=ann")
            assert response.status_code == 503 and "session store is unavailable" in response.text
            assert why in caplog.text and "redis_sentinel_password" in caplog.text
            assert PASSWORD not in caplog.text and SENTINEL_PASSWORD not in caplog.text
        # the queue reached (its use across workers: the deployment tests); no request, so that no listener of
        # its stays behind in this process, retrying once the sentinel is gone
        make_app(counter_app, **store, redis_sentinel_password=SENTINEL_PASSWORD,
                 socketio_options={"message_queue": sentinel.url})
        client = Client(make_app(counter_app, **store, redis_sentinel_password=SENTINEL_PASSWORD))
        assert client.post("/login?user=ann").status_code == 200
        assert client.post("/incr").text.strip() == "1"
        with redis.Redis(port=sentinel.primary.port, password=PASSWORD) as primary:
            assert len(primary.keys("wsgisession:*:session")) == 1
    finally:
        sentinel.stop()


def test_the_documented_rename_carries_sessions_over_from_the_old_key_names(tmp_path: Path) -> None:
    """docs/configuration.rst's one-off command: old ``wsgisession:<id>:session`` keys read under the new names."""
    docs = (ROOT / "docs" / "configuration.rst").read_text()
    command = textwrap.dedent(docs.split("**Upgrading from the old key names.**", 1)[1].split("::\n", 1)[1])
    server = Redis(tmp_path)
    server.start()
    try:
        admin = redis.Redis(port=server.port)
        old, newer, unrelated = new_session_id(), new_session_id(), new_session_id()
        admin.set(f"wsgisession:{old}:session", "old", ex=500)
        admin.set(f"wsgisession:{newer}:session", "stale")
        admin.set(f"wsgisession:{{{newer}}}:session", "newer")  # written by the new version already
        admin.set(f"other:{unrelated}:session", "not ours")
        subprocess.run(["bash", "-euo", "pipefail", "-c", command], check=True, timeout=60,
                       env={**os.environ, "REDIS_URL": server.url})
        store = Store(type="ext:redis", url=server.url)
        assert store.read(old) == "old" and 400 < admin.ttl(f"wsgisession:{{{old}}}:session") <= 500
        assert store.read(newer) == "newer", "a newer record is never overwritten"
        assert admin.get(f"other:{unrelated}:session") == b"not ours"
    finally:
        server.stop()
