#!/usr/bin/env python3
"""What the per-user index of sessions costs: an ordinary event, login and logout, bound vs not.

    .venv/bin/python benchmarks/devices.py                     # memory and file stores
    .venv/bin/python benchmarks/devices.py --stores memory,file,redis --redis-url redis://127.0.0.1:6379/9

For each store it reports, in one run:

- an ordinary socket event (the counter's ``incr``: a locked read-modify-write)
  on a session bound to a user against the same event on an unbound session:
  store transactions per event (counted) and CPU per event (``time.thread_time``,
  the median of ``--rounds``), and their ratio;
- a login (rotate the id, bind the user, save) and a logout (delete), with the
  index and on an unbound session: store transactions per operation and CPU.

The claim it checks (README, "Users and their devices"): binding adds at most one
store transaction to login and to logout, and none to an ordinary event.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import gevent.monkey

gevent.monkey.patch_all()

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wsgisession import SharedSession, make_app  # noqa: E402
from wsgisession.app import WsgiSessionApp  # noqa: E402
from wsgisession.users import index_id  # noqa: E402

SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def build(store: str, redis_url: str | None, directory: str) -> WsgiSessionApp:
    options: dict[str, Any] = {"secret": SECRET, "type": store, "timeout": 3600, "sweep_interval": None}
    if store == "file":
        options["data_dir"] = directory
    elif store == "redis":
        options["type"], options["url"] = "ext:redis", redis_url
    app = make_app(None, **options)

    @app.on("incr")
    def incr(sid: str, session: SharedSession) -> int:
        with session.atomic():
            session["n"] = session.get("n", 0) + 1
            return int(session["n"])

    return app


class Counted:
    """Counts the store's transactions (the store round trips that take a lock)."""

    def __init__(self, app: WsgiSessionApp) -> None:
        self.store = app.manager.store
        self.begin = self.store.begin
        self.taken: list[str] = []

        def counting(session_id: str, timeout: float | None = None) -> Any:
            self.taken.append(session_id)
            return self.begin(session_id, timeout)

        self.store.begin = counting  # type: ignore[method-assign]

    def per(self, run: Callable[[], Any], n: int) -> tuple[float, float]:
        """(transactions, index transactions) per call of ``run``."""
        self.taken.clear()
        for _ in range(n):
            run()
        index = self.taken.count(index_id("bench"))
        return len(self.taken) / n, index / n


def socket_of(app: WsgiSessionApp, session: SharedSession, name: str) -> Callable[[], Any]:
    sockets = app.sockets
    sid = sockets.sio.manager.connect(name, "/")
    cookie = app.cookie.sign(session.id)
    handshake = {"HTTP_HOST": "localhost", "HTTP_ORIGIN": "http://localhost",
                 "HTTP_COOKIE": f"{app.cookie.name}={cookie}"}
    sockets.connect("/", sid, handshake, None, None)
    handler = sockets._handlers["/"]["incr"]  # noqa: SLF001 - called as python-socketio calls it
    return lambda: sockets.dispatch(sid, handler, ())


def cpu(run: Callable[[], Any], n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(n):
            run()
        samples.append((time.thread_time() - start) / n * 1e6)
    return statistics.median(samples)


def measure(store: str, redis_url: str | None, events: int, rounds: int) -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        app = build(store, redis_url, directory)
        counted = Counted(app)
        manager = app.manager
        plain = SharedSession.create(manager)
        bound = SharedSession.create(manager)
        bound.bind_user("bench", label="bench")
        bound.save()
        plain_event, bound_event = socket_of(app, plain, "eio-plain"), socket_of(app, bound, "eio-bound")
        for run in (plain_event, bound_event):
            cpu(run, events // 10, 1)  # warm-up
        rows = []
        txn_plain, _ = counted.per(plain_event, 100)
        txn_bound, index_bound = counted.per(bound_event, 100)
        us_plain, us_bound = cpu(plain_event, events, rounds), cpu(bound_event, events, rounds)
        rows.append(f"{store:7} event incr   unbound {us_plain:7.1f} us {txn_plain:.0f} txn | bound "
                    f"{us_bound:7.1f} us {txn_bound:.0f} txn ({index_bound:.0f} index) | ratio {us_bound / us_plain:.2f}")

        def login(bind: bool) -> Callable[[], Any]:
            def run() -> None:
                session = SharedSession.create(manager)
                session.regenerate_id()
                if bind:
                    session.bind_user("bench", label="bench")
                else:
                    session["user"] = "bench"
                session.save()
                session.delete()
            return run

        n = max(50, events // 20)
        for label, bind in (("unbound", False), ("bound", True)):
            txn, index = counted.per(login(bind), 50)
            us = cpu(login(bind), n, rounds)
            rows.append(f"{store:7} login+logout {label:7} {us:7.1f} us {txn:.0f} txn ({index:.0f} index)")
        app.sockets.stop()
        return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="memory,file")
    parser.add_argument("--redis-url", default=os.environ.get("WSGISESSION_BENCH_REDIS"))
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    for store in args.stores.split(","):
        for row in measure(store, args.redis_url, args.events, args.rounds):
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
