"""SPEC rules 4-6 end to end: no lost updates from any mix of HTTP and sockets.

Real servers (``wsgisession serve``; gunicorn with 2 and 4 workers) serving
tests/lost_updates_app.py on the memory (one process), file and Redis stores;
real clients (requests, python-socketio over websocket and polling). The
clients run in threads of this process, so every request and event really is
in flight at once; the servers run them as greenlets.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from tests.helpers import (
    ROOT, all_at_once, check_increments, connect, cookie_header, counter_http, disconnect, four_sockets, get, http_job,
    new_session, socket_job, split, spread_sockets,
)
from tests.servers import Server, gunicorn, serve, write_ini

N = 50  # HTTP requests
M = 50  # socket events
APP = "call:tests.lost_updates_app:app_factory"


def store_settings(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if backend == "memory":
        return {"beaker.session.type": "memory", "beaker.session.data_dir": None}
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        return {"beaker.session.type": "ext:redis", "beaker.session.url": url, "beaker.session.data_dir": None}
    return {"beaker.session.type": backend}


@pytest.fixture(
    scope="module", params=["memory", "sqlite", "file", pytest.param("redis", marks=pytest.mark.redis)]
)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One process per store. Every request touches the access time (``touch_interval = 0``),
    so even read-only requests and events write: merged, they must still lose nothing."""
    directory = tmp_path_factory.mktemp(request.param)
    settings = store_settings(request.param, request)
    settings.update({"beaker.session.timeout": 3600, "wsgisession.touch_interval": 0})
    with serve(write_ini(directory, use=APP, **settings)) as server:
        yield server


# -- rule 5: atomic updates, one process per store ---------------------------------
# In one process, a handler that never yields between its read and its write cannot
# interleave with another: the "_slow" variants yield to other greenlets there, as a
# handler doing any I/O would (and with wsgisession.locking = false they lose updates).
@pytest.mark.parametrize("incr", ["incr", "incr_slow"])
def test_rule5_http_and_socket_increments_end_at_exactly_n_plus_m(server: Server, incr: str) -> None:
    cookie, _ = new_session(server.url)
    clients = four_sockets(server.url, cookie)
    try:
        check_increments(server.url, cookie, clients, incr)
    finally:
        disconnect(clients)


# -- rule 4: merged saves ------------------------------------------------------------
@pytest.mark.parametrize("set_", ["set", "set_slow"])
def test_rule4_writers_of_different_keys_lose_nothing(server: Server, set_: str) -> None:
    cookie, _ = new_session(server.url)
    clients = four_sockets(server.url, cookie)
    try:
        http_jobs = [http_job(server.url, cookie, "/" + set_, **{f"h{i}": str(i)}) for i in range(N)]
        event_jobs = [
            socket_job(client, set_, [{f"s{part}_{i}": i} for i in range(count)])
            for part, (client, count) in enumerate(zip(clients, split(M, len(clients))))
        ]
        all_at_once([*http_jobs, *event_jobs])
    finally:
        disconnect(clients)
    data = get(server.url, cookie)
    expected: dict[str, Any] = {f"h{i}": str(i) for i in range(N)}
    expected.update({f"s{part}_{i}": i for part, count in enumerate(split(M, 4)) for i in range(count)})
    assert {k: v for k, v in data.items() if k in expected} == expected
    assert data["who"] == "ann"


def test_rule4_a_slow_read_only_request_does_not_undo_a_write(server: Server) -> None:
    cookie, _ = new_session(server.url)
    client = connect(server.url, cookie=cookie)
    try:
        with ThreadPoolExecutor(2) as pool:
            slow_http = pool.submit(http_job(server.url, cookie, "/slow_get", delay=1.0))
            slow_event = pool.submit(client.call, "slow_get", 1.0, timeout=10)
            time.sleep(0.3)  # both have read the session and hold their (soon stale) copies
            http_job(server.url, cookie, "/set", by_http="1")()
            assert client.call("set", {"by_socket": 2}, timeout=10)["by_http"] == "1"
            _, seen_by_slow_http = slow_http.result(10)
            seen_by_slow_event = slow_event.result(10)
    finally:
        client.disconnect()
    assert "by_http" not in seen_by_slow_http and "by_http" not in seen_by_slow_event, "they did overlap"
    data = get(server.url, cookie)
    assert data["by_http"] == "1" and data["by_socket"] == 2 and data["who"] == "ann"


@pytest.mark.parametrize("backend", ["sqlite", "file"])
def test_rule4_a_read_only_request_or_event_writes_nothing(tmp_path: Path, backend: str) -> None:
    # The default touch interval: nothing is due, so reading must not write at all.
    with serve(write_ini(tmp_path, use=APP, **{"beaker.session.type": backend})) as server:
        cookie, session_id = new_session(server.url)
        if backend == "file":
            digest = hashlib.sha256(session_id.encode()).hexdigest()
            record = tmp_path / "sessions" / "wsgisession" / digest[:2] / f"{digest}.json"
        else:  # any commit appends to the write-ahead log
            record = tmp_path / "sessions" / "wsgisession.sqlite3-wal"
        before = os.stat(record)
        time.sleep(0.05)
        assert get(server.url, cookie)["who"] == "ann"
        client = connect(server.url, cookie=cookie)
        try:
            assert client.call("get", timeout=10)["who"] == "ann"
        finally:
            client.disconnect()
        after = os.stat(record)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)


# -- rules 5 and 6 across processes: gunicorn workers -----------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "backend,workers",
    [pytest.param("redis", 2, marks=pytest.mark.redis), pytest.param("redis", 4, marks=pytest.mark.redis),
     ("sqlite", 2), ("file", 2)],
)
def test_rule5_increments_across_gunicorn_workers(
    backend: str, workers: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = store_settings(backend, request)
    if backend == "redis":
        settings["socketio.message_queue"] = settings["beaker.session.url"]
    with gunicorn(write_ini(tmp_path, use=APP, **settings), workers=workers) as server:
        cookie, _ = new_session(server.url)
        clients = spread_sockets(server.url, cookie, workers)
        try:
            socket_pids = Counter(client.call("pid", timeout=10) for client in clients)
            outcome = check_increments(server.url, cookie, clients, "incr_slow")
        finally:
            disconnect(clients)
        print(f"  sockets per worker {dict(socket_pids)}")
        assert len(socket_pids) >= 2 and len(outcome["pids"]) >= 2, "the clients did not spread over the workers"
        assert "Traceback" not in server.output()


@pytest.mark.slow
@pytest.mark.redis
def test_rule5_conf_counter_redis_ini_counts_exactly_across_workers(redis_url: str, tmp_path: Path) -> None:
    """conf/counter-redis.ini as shipped (its Redis URL pointed at the test's server):
    the counter example's ``/incr`` and ``incr`` over two workers."""
    text = (ROOT / "conf" / "counter-redis.ini").read_text()
    assert "redis://127.0.0.1:6379/0" in text and "socketio.message_queue" in text
    ini = tmp_path / "counter-redis.ini"
    ini.write_text(text.replace("redis://127.0.0.1:6379/0", redis_url))
    with gunicorn(ini, workers=2) as server:
        http = counter_http(server.url)
        cookie = cookie_header(http)
        http.close()
        clients = all_at_once([lambda: connect(server.url, cookie=cookie, transport="websocket")] * 4)
        try:
            jobs: list[Callable[[], Any]] = [lambda: requests.post(server.url + "/incr", headers={"Cookie": cookie, "Connection": "close"},
                                         timeout=30).text for _ in range(N)]
            jobs += [socket_job(c, "incr", [None] * k) for c, k in zip(clients, split(M, len(clients)))]
            results = all_at_once(jobs)
        finally:
            disconnect(clients)
        values = [int(text) for text in results[:N]] + [n for acks in results[N:] for n in acks]
        assert sorted(values) == list(range(1, N + M + 1))
        assert requests.get(server.url + "/n", headers={"Cookie": cookie}, timeout=10).text.strip() == str(N + M)
