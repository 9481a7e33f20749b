#!/usr/bin/env python3
"""Instructions per socket event in process, with many greenlets at once (SQLite's group commit forms).

    .venv/bin/python benchmarks/greenlets.py --store sqlite --workload incr
    .venv/bin/python benchmarks/greenlets.py --store sqlite --without wait     # what the commit's wait costs
    .venv/bin/python benchmarks/greenlets.py --store sqlite --without update   # what the UPDATE costs

``inprocess.py`` dispatches one session's events one after another, so on SQLite
every transaction commits alone. Here ``--sessions`` greenlets, each a logged-in
session bound to a socket id, dispatch the counter's handler
(:meth:`SessionSockets.dispatch`, as python-socketio calls it) ``--rounds`` times
each, all at once: their transactions group as a served load's do. The figure is
the difference of two whole runs under valgrind's callgrind (``--rounds`` and
``--base-rounds``, the same setup), divided by the events between them: start-up,
logins and warm-up cancel out. Needs valgrind.

``--without`` counts what a part costs by leaving it out (the server would then be
wrong, so this is for measuring only): ``wait``, a group member does not wait for
its ``COMMIT``; ``update``, a transaction stages its row but writes nothing.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(store: str, workload: str, sessions: int, rounds: int, without: str | None) -> None:
    """The measured run (inside valgrind): ``sessions`` greenlets, ``rounds`` events each, after a warm-up."""
    import gevent
    from werkzeug.test import Client

    from examples.counter import counter_app, register
    from inprocess import SECRET, WORKLOADS
    from wsgisession import make_app
    from wsgisession.backends import sqlite

    options: dict[str, Any] = {"secret": SECRET, "type": store, "timeout": 3600, "sweep_interval": None}
    if store in ("sqlite", "file"):
        options["data_dir"] = tempfile.mkdtemp(prefix="wsgisession-greenlets-")
    app = make_app(counter_app, **options)
    register(app)
    sockets = app.sockets
    handler, args = sockets._handlers["/"][workload], WORKLOADS[workload]  # noqa: SLF001
    sids = []
    for n in range(sessions):
        client = Client(app)
        assert client.post(f"/login?user=u{n}").status_code == 200
        cookie = client.get_cookie(app.cookie.name)
        assert cookie is not None
        sid = sockets.sio.manager.connect(f"eio-{n}", "/")
        sockets.connect("/", sid, {"HTTP_HOST": "localhost", "HTTP_ORIGIN": "http://localhost",
                                   "HTTP_COOKIE": f"{cookie.key}={cookie.value}"}, None, None)
        sids.append(sid)

    # after the logins (a session is written alone, then read back)
    if without == "wait":
        sqlite.Group.wait = lambda self: None  # type: ignore[method-assign]
    elif without == "update":
        def stage(self: sqlite.Database, writer: object, namespace: str, key: str, value: str | None,
                  ttl: float | None) -> None:
            self._staged[(namespace, key)] = value  # noqa: SLF001

        sqlite.Database.apply = stage  # type: ignore[assignment, method-assign]

    def events(sid: str, count: int) -> None:
        for _ in range(count):
            sockets.dispatch(sid, handler, args)

    def all_at_once(count: int) -> None:
        gevent.joinall([gevent.spawn(events, sid, count) for sid in sids], raise_error=True)

    all_at_once(20)  # warm-up: caches, the database's pages, the first checkpoint's thread
    all_at_once(rounds)


def counted(argv: list[str]) -> int:
    """This script's instructions under callgrind with ``argv`` (the whole process, hash seed fixed)."""
    env = {**os.environ, "PYTHONHASHSEED": "1"}
    answer = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--inside", *argv], capture_output=True, text=True, env=env, cwd=ROOT, check=True,
    )
    found = re.search(r"Collected : (\d+)", answer.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count:\n{answer.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="sqlite", choices=("memory", "sqlite", "file"))
    parser.add_argument("--workload", default="incr", choices=("echo", "whoami", "incr"))
    parser.add_argument("--sessions", type=int, default=50, help="greenlets, each its own session (default 50)")
    parser.add_argument("--rounds", type=int, default=60, help="events per greenlet in the longer run")
    parser.add_argument("--base-rounds", type=int, default=20, help="events per greenlet in the shorter run")
    parser.add_argument("--without", choices=("wait", "update"), help="leave a part out (sqlite; measuring only)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    common = ["--store", options.store, "--workload", options.workload, "--sessions", str(options.sessions)]
    if options.without:
        common += ["--without", options.without]
    if options.inside:
        from gevent import monkey

        monkey.patch_all()
        sys.path[:0] = [str(ROOT), str(HERE)]
        run(options.store, options.workload, options.sessions, options.rounds, options.without)
        return 0
    if options.rounds <= options.base_rounds:
        parser.error("--rounds must be more than --base-rounds")
    short = counted([*common, "--rounds", str(options.base_rounds)])
    long = counted([*common, "--rounds", str(options.rounds)])
    events = options.sessions * (options.rounds - options.base_rounds)
    label = f"{options.store} {options.workload}" + (f" without {options.without}" if options.without else "")
    print(f"{label}: {(long - short) / events:,.0f} instructions per event "
          f"({options.sessions} greenlets, {events} events counted)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
