#!/usr/bin/env python3
"""What one socket event costs inside the server: the per-event session path alone.

    .venv/bin/python benchmarks/inprocess.py                   # memory and file stores
    .venv/bin/python benchmarks/inprocess.py --stores memory,file,redis --redis-url redis://127.0.0.1:6379/9
    .venv/bin/python benchmarks/inprocess.py --profile incr    # cProfile of one workload, top functions

It builds the counter example (``examples/counter``, as ``conf/counter.ini``:
``beaker.session.timeout = 3600``) with ``make_app``, logs in over HTTP
through the composed WSGI app, binds a socket id to that session as a
connect would, and calls :meth:`SessionSockets.dispatch` with the counter's
handlers: the same call python-socketio makes for each event, without the
network, Engine.IO or the packet codec. For each store and workload it reports

- ``calls/ev``: Python function calls per event (``sys.setprofile``), exact and
  the same on every machine and run: the figure to compare code changes by;
- ``cpu us/ev``: CPU time per event (``time.thread_time``), the median of the
  rounds (``--rounds``), each of ``--events`` events after a warm-up;
- with ``--callgrind``, ``instr/ev``: machine instructions per event counted by
  valgrind's callgrind (collected only inside the loop of events): repeatable to
  a fraction of a percent, where CPU time on a shared VM moves by 10-30%.

``run.py`` measures whole servers end to end; this isolates what wsgisession
adds per event, and (``--codec``) what python-socketio's packet JSON costs with
the standard library and with :mod:`wsgisession.wirejson`.
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import itertools
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import gevent.monkey

gevent.monkey.patch_all()

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from werkzeug.test import Client  # noqa: E402

from wsgisession import make_app  # noqa: E402
from examples.counter import counter_app, register  # noqa: E402

SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
WORKLOADS = {"echo": ("ping",), "whoami": (), "incr": ()}


def bound_counter(store: str, redis_url: str | None, directory: str) -> Callable[[str], Callable[[], Any]]:
    """The counter on ``store`` with one logged-in session bound to a socket; workload -> one event."""
    options: dict[str, Any] = {"secret": SECRET, "type": store, "timeout": 3600, "sweep_interval": None}
    if store in ("sqlite", "file"):
        options["data_dir"] = directory
    elif store == "redis":
        options["type"], options["url"] = "ext:redis", redis_url
    app = make_app(counter_app, **options)
    register(app)
    client = Client(app)
    assert client.post("/login?user=bench").status_code == 200
    cookie = client.get_cookie(app.cookie.name)
    assert cookie is not None
    session_id = app.cookie.read({"HTTP_COOKIE": f"{cookie.key}={cookie.value}"})
    sockets = app.sockets
    sid = sockets.sio.manager.connect("bench-eio-sid", "/")  # as python-socketio registers a socket
    handshake = {"HTTP_HOST": "localhost", "HTTP_ORIGIN": "http://localhost",
                 "HTTP_COOKIE": f"{cookie.key}={cookie.value}"}
    sockets.connect("/", sid, handshake, None, None)  # joins the session (the handshake is not measured)
    assert sockets.bindings() == {sid: ("/", session_id)}
    handlers = sockets._handlers["/"]  # noqa: SLF001 - the handlers as registered, called as python-socketio does

    def event(workload: str) -> Callable[[], Any]:
        handler, args = handlers[workload], WORKLOADS[workload]
        return lambda: sockets.dispatch(sid, handler, args)

    return event


def calls_per_event(run: Callable[[], Any], events: int) -> float:
    """Python function calls (and C calls) per event, counted exactly."""
    count = 0

    def tracer(frame: Any, kind: str, arg: Any) -> None:
        nonlocal count
        if kind in ("call", "c_call"):
            count += 1

    sys.setprofile(tracer)
    try:
        for _ in range(events):
            run()
    finally:
        sys.setprofile(None)
    return count / events


def cpu_per_event(run: Callable[[], Any], events: int) -> float:
    start = time.thread_time()
    run_events(run, events)
    return (time.thread_time() - start) / events * 1e6


#: callgrind collects only inside this C function: the loop of events runs in itertools.starmap
_TOGGLE = "starmap_next"


def run_events(run: Callable[[], Any], events: int) -> None:
    collections.deque(itertools.starmap(run, itertools.repeat((), events)), maxlen=0)


def instructions_per_event(store: str, workload: str, redis_url: str | None, events: int) -> float | None:
    """Machine instructions per event, counted by callgrind in a child process (None without valgrind)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    argv = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", "--collect-atstart=no",
            f"--toggle-collect={_TOGGLE}", sys.executable, __file__, "--one", f"{store}:{workload}",
            "--events", str(events), "--redis-url", redis_url or ""]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    return int(found.group(1)) / events if found else None


def codec_rows(rounds: int, events: int) -> list[tuple[str, str, float, float, float | None]]:
    """python-socketio's decoding of an event and encoding of its ack: engineio.json (the default) vs wirejson."""
    from engineio import json as engineio_json
    from socketio import packet

    from wsgisession import wirejson

    rows = []
    for name, module in (("engineio.json", engineio_json), ("wirejson", wirejson)):
        class Packet(packet.Packet):
            json = module

        def roundtrip(packet_class: type[packet.Packet] = Packet) -> None:
            incoming = packet_class(encoded_packet='2["echo","ping"]')
            packet_class(packet.ACK, data=[incoming.data[1]], id=7).encode()

        for _ in range(events // 10):
            roundtrip()
        cpu = statistics.median(cpu_per_event(roundtrip, events) for _ in range(rounds))
        rows.append(("codec", name, calls_per_event(roundtrip, 200), cpu, None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="memory,file", help="comma list of memory, sqlite, file, redis")
    parser.add_argument("--redis-url", default=os.environ.get("WSGISESSION_BENCH_REDIS"),
                        help="for the redis store (a database the run may write to)")
    parser.add_argument("--events", type=int, default=5000, help="events per round and workload")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--codec", action="store_true", help="also time python-socketio's packet JSON")
    parser.add_argument("--profile", metavar="WORKLOAD", help="cProfile WORKLOAD on the first store instead")
    parser.add_argument("--callgrind", action="store_true", help="also count instructions per event (valgrind)")
    parser.add_argument("--one", metavar="STORE:WORKLOAD", help=argparse.SUPPRESS)  # the child of --callgrind
    args = parser.parse_args(argv)
    if args.one:
        store, _, workload = args.one.partition(":")
        with tempfile.TemporaryDirectory(prefix="wsgisession-inprocess-") as directory:
            run = bound_counter(store, args.redis_url, directory)(workload)
            for _ in range(200):
                run()
            run_events(run, args.events)
        return 0
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if "redis" in stores and not args.redis_url:
        parser.error("the redis store needs --redis-url (or WSGISESSION_BENCH_REDIS)")
    rows: list[tuple[str, str, float, float, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="wsgisession-inprocess-") as directory:
        for store in stores:
            event = bound_counter(store, args.redis_url, directory)
            if args.profile:
                run = event(args.profile)
                profiler = cProfile.Profile()
                profiler.runcall(run_events, run, args.events)
                pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
                return 0
            for workload in WORKLOADS:
                run = event(workload)
                for _ in range(max(100, args.events // 10)):  # warm-up
                    run()
                calls = calls_per_event(run, 200)
                cpu = statistics.median(cpu_per_event(run, args.events) for _ in range(args.rounds))
                instructions = (instructions_per_event(store, workload, args.redis_url, 1000)
                                if args.callgrind else None)
                rows.append((store, workload, calls, cpu, instructions))
    if args.codec:
        rows += codec_rows(args.rounds, args.events)
    print(f"{'store':8s}  {'event':12s}  {'calls/ev':>8s}  {'cpu us/ev':>9s}  {'instr/ev':>9s}")
    for store, workload, calls, cpu, instructions in rows:
        shown = "-" if instructions is None else f"{instructions:,.0f}"
        print(f"{store:8s}  {workload:12s}  {calls:8.1f}  {cpu:9.2f}  {shown:>9s}")
    print(f"\n{args.rounds} rounds x {args.events} events; Python {sys.version.split()[0]}; {os.uname().machine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
