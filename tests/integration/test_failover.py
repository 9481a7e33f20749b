"""A Sentinel failover, and a Redis Cluster's, under mixed HTTP and socket load: refused clearly, resumed
without a restart, writes counted.

A primary, a replica and redis-sentinel (tests/servers.py ``Sentinel``); two
gunicorn workers with the store and the message queue on the
``redis+sentinel://`` URL. HTTP clients and sockets on both workers write keys
of one session (each write its own key, so a write that did not survive is
seen) and read it, while the primary is killed (SIGKILL). During the switch a
request is answered 503, an event ``{"error": "store_unavailable"}`` and a new
socket is refused ``store_unavailable``, never with a new empty session or
another id; once the sentinel has promoted the
replica the same workers serve again, and a logout still ends the sockets of
both, also once the old primary is back (as a replica). The test prints how many acknowledged writes survived: Redis replicates
asynchronously, so a write acknowledged just before the kill may be lost
(docs/configuration.rst gives the figures).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import socketio

from tests.helpers import connect, disconnect, new_session, refusal, spread_sockets, wait_until
from tests.servers import Cluster, Redis, Sentinel, gunicorn, write_ini

pytestmark = [pytest.mark.redis, pytest.mark.slow]

APP = "call:tests.lost_updates_app:app_factory"


class Load:
    """Writers and readers on one session until stopped; what each was answered, and when."""

    def __init__(self, base: str, cookie: str, clients: list[socketio.Client]) -> None:
        self.base, self.cookie, self.clients = base, cookie, clients
        self.acked: dict[str, float] = {}  # written key -> when its write was acknowledged
        self.refused: list[float] = []  # when a request or event was answered "store unavailable"
        self.wrong: list[str] = []  # anything else that is not a success
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.joined = 0  # sockets the connector joined to the session

    def start(self) -> None:
        for n in range(4):
            self.threads.append(threading.Thread(target=self.http_writer, args=(n,), daemon=True))
        for n, client in enumerate(self.clients):
            self.threads.append(threading.Thread(target=self.socket_writer, args=(n, client), daemon=True))
        self.threads.append(threading.Thread(target=self.http_reader, daemon=True))
        self.threads.append(threading.Thread(target=self.connector, daemon=True))
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def resumed(self, promoted_at: float) -> float:
        """Once a write is acknowledged after the promotion, 1.5 s more of it, then stop; when service resumed.

        That is the first write acknowledged after the test saw the promotion. The first one after the first
        refusal could be a write still in flight at the kill (a Sentinel run reported 0.00 s).
        """
        wait_until(lambda: any(t > promoted_at for t in self.acked.values()), timeout=15)
        served_at = min(t for t in self.acked.values() if t > promoted_at)
        time.sleep(1.5)  # -- served by the promoted replica, same workers -------------
        self.finish()
        return served_at

    def outcome(self, killed_at: float) -> tuple[dict[str, Any], list[float]]:
        """The session as stored now, and when (seconds from the kill) each lost write was acknowledged."""
        data = requests.get(self.base + "/get", headers={"Cookie": self.cookie}, timeout=10).json()
        return data, sorted(self.acked[key] - killed_at for key in self.acked if key not in data)

    def counted(self, lost: list[float]) -> str:
        """The answers told of, for the test's report: refused, acknowledged, survived, lost (and when)."""
        return (f"{len(self.refused)} answers 'store unavailable'; {len(self.acked)} writes acknowledged, "
                f"{len(self.acked) - len(lost)} survived, {len(lost)} lost (acknowledged "
                f"{', '.join(f'{-t * 1000:.0f}' for t in lost) or '-'} ms before the kill)")

    def assert_clear_and_kept(self, data: dict[str, Any], killed_at: float) -> None:
        """Refused clearly, nothing else wrong; only writes acknowledged before the kill may be lost."""
        assert self.wrong == [], self.wrong[:5]
        assert self.refused, "the switch was seen"
        assert all(self.acked[key] < killed_at for key in self.acked if key not in data), \
            "only writes acknowledged before the kill may be lost (asynchronous replication)"
        assert data["who"] == "ann" and self.joined > 0

    def check(self, data: Any, where: str) -> bool:
        """A session as answered: ours (``who``), never a new empty one."""
        if not isinstance(data, dict) or data.get("who") != "ann":
            with self.lock:
                self.wrong.append(f"{where}: {data!r}"[:200])
            return False
        return True

    def http_writer(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            key = f"h{n}_{i}"
            i += 1
            try:
                response = requests.get(self.base + "/set", params={key: "1"}, timeout=15,
                                        headers={"Cookie": self.cookie, "Connection": "close"})
            except requests.RequestException as exc:
                self.wrong.append(f"http: {exc}")
                continue
            self.answered(key, response)
            time.sleep(0.01)

    def http_reader(self) -> None:
        while not self.stop.is_set():
            response = requests.get(self.base + "/get", headers={"Cookie": self.cookie}, timeout=15)
            self.answered(None, response)
            time.sleep(0.01)

    def connector(self) -> None:
        """New sockets all along: joined to the session, or refused ``store_unavailable``."""
        while not self.stop.is_set():
            try:
                client = connect(self.base, cookie=self.cookie)
            except socketio.exceptions.ConnectionError as exc:
                if getattr(exc, "reason", None) == "store_unavailable":
                    self.refused.append(time.monotonic())
                else:
                    self.wrong.append(f"connect: {exc!r}"[:200])
            else:
                self.joined += 1
                client.disconnect()
            time.sleep(0.05)

    def answered(self, key: str | None, response: requests.Response) -> None:
        now = time.monotonic()
        if "Set-Cookie" in response.headers:  # never a new session, never a rotation
            self.wrong.append(f"http {response.status_code} set a cookie")
        if response.status_code == 503 and "session store is unavailable" in response.text:
            self.refused.append(now)
        elif response.status_code == 200 and self.check(response.json(), "http"):
            if key is not None:
                self.acked[key] = now
        elif response.status_code != 200:
            self.wrong.append(f"http {response.status_code}: {response.text[:100]}")

    def socket_writer(self, n: int, client: socketio.Client) -> None:
        i = 0
        while not self.stop.is_set():
            key = f"s{n}_{i}"
            i += 1
            try:
                ack = client.call("set", {key: 1}, timeout=15)
            except socketio.exceptions.TimeoutError:
                self.wrong.append(f"socket {n}: no acknowledgement")
                continue
            now = time.monotonic()
            if ack == {"error": "store_unavailable"}:
                self.refused.append(now)
            elif self.check(ack, f"socket {n}"):
                self.acked[key] = now
            time.sleep(0.01)


def a_logout_ends_every_socket(base: str, cookie: str, clients: list[socketio.Client]) -> None:
    """A new socket and a logout after the failover, across both workers: every socket is told."""
    again = connect(base, cookie=cookie)
    ended: list[Any] = []
    for client in [*clients, again]:
        client.on("session_ended", ended.append)
    requests.get(base + "/logout", headers={"Cookie": cookie}, timeout=10).raise_for_status()
    wait_until(lambda: len(ended) == len(clients) + 1, timeout=10)
    assert refusal(base, cookie=cookie) == "unknown_session"


def test_a_sentinel_failover_under_load_refuses_clearly_resumes_and_counts_what_survived(tmp_path: Path) -> None:
    sentinel = Sentinel(tmp_path / "redis")
    sentinel.start()
    try:
        settings = {"beaker.session.type": "ext:redis", "beaker.session.url": sentinel.url,
                    "beaker.session.data_dir": None, "socketio.message_queue": sentinel.url,
                    "wsgisession.redis_socket_timeout": 2, "wsgisession.redis_connect_timeout": 1}
        with gunicorn(write_ini(tmp_path, use=APP, **settings), workers=2) as server:
            cookie, session_id = new_session(server.url)
            replica = redis.Redis(port=sentinel.replica.port)
            wait_until(lambda: replica.exists(f"wsgisession:{{{session_id}}}:session") == 1, timeout=5)
            clients = spread_sockets(server.url, cookie, 2)
            load = Load(server.url, cookie, clients)
            try:
                load.start()
                time.sleep(1.5)
                first_port = sentinel.primary_port()
                killed_at = time.monotonic()
                sentinel.primary.kill()  # -- the primary dies ---------------------------------
                sentinel.wait_for(lambda: sentinel.primary_port() == sentinel.replica.port, "the promotion")
                promoted_at = time.monotonic()
                served_at = load.resumed(promoted_at)
                data, lost = load.outcome(killed_at)
                before = sum(t < killed_at for t in load.acked.values())
                print(f"\n  primary on port {first_port} killed; promoted after {promoted_at - killed_at:.2f}s, "
                      f"served again after {served_at - killed_at:.2f}s; {load.counted(lost)}; "
                      f"{before} of the writes acknowledged before the kill")
                load.assert_clear_and_kept(data, killed_at)

                # the old primary comes back empty: the sentinel makes it a replica, nobody reads it
                sentinel.primary.start()
                back_at = time.monotonic()
                sentinel.wait_for(lambda: redis.Redis(port=sentinel.primary.port).role()[0] == b"slave",
                                  "the old primary to rejoin as a replica")
                print(f"  the old primary rejoined as a replica {time.monotonic() - back_at:.1f}s after its restart")
                assert requests.get(server.url + "/get", headers={"Cookie": cookie}, timeout=10).json() == data

                a_logout_ends_every_socket(server.url, cookie, clients)  # on the promoted replica
            finally:
                load.finish()
                disconnect(clients)
        output = server.output()
        assert "Traceback" not in output, output[-3000:]
        assert session_id not in output
    finally:
        sentinel.stop()


def test_a_cluster_failover_under_load_refuses_clearly_resumes_and_counts_what_survived(tmp_path: Path) -> None:
    """A Redis Cluster of three primaries, each with a replica (``cluster-node-timeout 2000``); two gunicorn
    workers, the queue on a Redis of its own. The primary of the session's slot is killed under the same load
    as above: 503 and ``store_unavailable`` until its replica is promoted, then the same workers serve again
    (the slot map asked again after a connection error), and a logout still ends every socket."""
    cluster = Cluster(tmp_path / "cluster", size=6, replicas=1)
    queue = Redis(tmp_path / "queue")
    cluster.start()
    queue.start()
    try:
        settings = {"beaker.session.type": "ext:redis", "beaker.session.url": cluster.url,
                    "beaker.session.data_dir": None, "wsgisession.redis_cluster": "true",
                    "socketio.message_queue": queue.url,
                    "wsgisession.redis_socket_timeout": 2, "wsgisession.redis_connect_timeout": 1}
        with gunicorn(write_ini(tmp_path, use=APP, **settings), workers=2) as server:
            cookie, session_id = new_session(server.url)
            key = f"wsgisession:{{{session_id}}}:session"
            wait_until(lambda: cluster.serving(key)[1] is not None, timeout=30)  # the replicas join after a while
            primary_port, replica_port = cluster.serving(key)
            assert replica_port is not None
            with redis.Redis(port=replica_port) as replica:
                replica.execute_command("READONLY")
                wait_until(lambda: replica.exists(key) == 1, timeout=5)
            clients = spread_sockets(server.url, cookie, 2)
            load = Load(server.url, cookie, clients)
            try:
                load.start()
                time.sleep(1.5)
                killed_at = time.monotonic()
                next(node for node in cluster.nodes if node.port == primary_port).kill()  # -- it dies ---------
                live = next(node.port for node in cluster.nodes if node.port not in (primary_port, replica_port))
                wait_until(lambda: cluster.serving(key, ask=live)[0] == replica_port, timeout=30)
                promoted_at = time.monotonic()
                served_at = load.resumed(promoted_at)
                data, lost = load.outcome(killed_at)
                print(f"\n  the slot's primary (port {primary_port}) killed; its replica promoted after "
                      f"{promoted_at - killed_at:.2f}s, served again after {served_at - killed_at:.2f}s; "
                      f"{load.counted(lost)}")
                load.assert_clear_and_kept(data, killed_at)
                a_logout_ends_every_socket(server.url, cookie, clients)
            finally:
                load.finish()
                disconnect(clients)
        output = server.output()
        assert "Traceback" not in output, output[-3000:]
        assert session_id not in output
    finally:
        queue.stop()
        cluster.stop()
