#!/usr/bin/env python3
"""Server instructions per websocket event, end to end, counted by valgrind's callgrind.

    .venv/bin/python benchmarks/callgrind.py                       # ours (memory, file), bare python-socketio, Flask
    .venv/bin/python benchmarks/callgrind.py --targets 'wsgisession/memory,bare-socketio' --events 40

On a shared VM, CPU time per event moves by 10-30% from one round to the next,
as much as the differences ``run.py`` looks for. This runs the same servers and
the same node load client as ``run.py``, but each server under callgrind, with
instrumentation off until the sockets are connected and warmed up; then, per
workload, it zeroes the counters, runs the events and dumps: the server's
machine instructions (every line of Python, gevent, Engine.IO, websocket
framing and JSON included) divided by the events acknowledged. The server runs
~50x slower under valgrind, so the load is small (``--sessions`` sockets, each
sending ``--events`` acked events one after another); the figure depends a little
on how many events one wake-up of the server handles, so every target gets the
same load. Needs valgrind (``apt-get install valgrind``).
"""
from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import RESULTS, ROOT, Target, load_client, machine, ours, preflight, python_peer, start  # noqa: E402

from tests.servers import free_port  # noqa: E402

WORKLOADS = ("echo", "whoami", "incr")


def targets_for(directory: Path, have: dict[str, bool]) -> list[Target]:
    targets = [ours(store, directory, None) for store in ("memory", "file")]
    targets.append(Target("bare-socketio", "bare", "none", workloads=("echo",), launch=python_peer("bare_socketio.py")))
    if have["flask"]:
        targets.append(Target("flask/memory", "flask", "memory",
                              launch=python_peer("flask_socketio_peer.py", "--type", "memory")))
    return targets


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def measure(target: Target, outdir: Path, sessions: int, events: int, warmup: int) -> dict[str, float]:
    """Start ``target`` under callgrind and count its instructions per event for each workload."""
    port = free_port()
    out = outdir / target.name.replace("/", "-")
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p",
            *target.launch(port)]
    proc = start(target.name, argv, port=port, logdir=outdir, cores=None, cwd=target.cwd, timeout=180)
    found: dict[str, float] = {}
    try:
        with load_client(proc.url, None, outdir) as client:
            client.call({"cmd": "login", "sessions": sessions, "prefix": "cg"}, timeout=600)
            client.call({"cmd": "connect", "per_session": 1}, timeout=600)
            for workload in target.workloads:
                client.call({"cmd": "events", "event": workload, "per_socket": warmup}, timeout=600)
                control(proc.pid, "-i", "on")
                control(proc.pid, "-z")
                answer = client.call({"cmd": "events", "event": workload, "per_socket": events}, timeout=900)
                control(proc.pid, "-d")
                control(proc.pid, "-i", "off")
                dumps = sorted(outdir.glob(f"{out.name}.{proc.pid}.*"), key=lambda p: p.stat().st_mtime)
                summary = re.search(r"^summary: (\d+)", dumps[-1].read_text(), re.MULTILINE)
                acked = int(answer.get("acked") or 0)
                if summary and acked:
                    found[workload] = int(summary.group(1)) / acked
                print(f"  {target.name:20s} {workload:7s} {found.get(workload, 0):>12,.0f} instructions/event "
                      f"({acked} events)", flush=True)
    finally:
        proc.stop()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="*", help="globs, e.g. 'wsgisession/memory,bare-socketio'")
    parser.add_argument("--sessions", type=int, default=10, help="sockets (one session each)")
    parser.add_argument("--events", type=int, default=30, help="acked events per socket and workload")
    parser.add_argument("--warmup", type=int, default=10, help="uncounted events per socket before each workload")
    parser.add_argument("--output", help="JSON results (default benchmarks/results/<date>-<host>-callgrind.json)")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "node"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is needed")
    globs = [g.strip() for g in args.targets.split(",") if g.strip()]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="wsgisession-callgrind-") as tmp:
        directory = Path(tmp)
        for target in targets_for(directory, preflight()):
            if any(fnmatch.fnmatch(target.name, g) for g in globs):
                results[target.name] = measure(target, directory, args.sessions, args.events, args.warmup)
    ours_echo = results.get("wsgisession/memory", {}).get("echo")
    bare_echo = results.get("bare-socketio", {}).get("echo")
    print(f"\nServer instructions per acked websocket event ({args.sessions} sockets x {args.events} events)")
    print(f"{'target':20s} {'event':7s} {'instr/ev':>10s} {'/ our echo':>10s} {'/ bare echo':>11s}")
    for name, found in results.items():
        for workload, value in found.items():
            own = results[name].get("echo", ours_echo)
            print(f"{name:20s} {workload:7s} {value:>10,.0f} {value / own if own else 0:>9.2f}x "
                  f"{value / bare_echo if bare_echo else 0:>10.2f}x")
    host = machine(args, None, None)
    stamp = datetime.date.today().isoformat()
    output = Path(args.output) if args.output else RESULTS / f"{stamp}-{host['host']}-callgrind.json"
    output.write_text(json.dumps({"command": sys.argv, "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                                  "sizes": vars(args), "instructions_per_event": results,
                                  "machine": host}, indent=2) + "\n")
    print(f"\nraw results: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
