#!/usr/bin/env python3
"""Server instructions per HTTP request, over a real server, counted by valgrind's callgrind.

    .venv/bin/python benchmarks/callgrind_http.py                     # every HTTP app of run.py's http section
    .venv/bin/python benchmarks/callgrind_http.py --targets 'bare,wsgisession/sqlite' --requests 400

The HTTP path's ratios (a request that reads or writes the session over the bare
Werkzeug app; Beaker's middleware and Flask-Session over ours) are CPU time in
``run.py``, and on a shared VM CPU time moves 10-30% from round to round: as much
as the differences looked for. This serves the same apps
(``benchmarks/peers/http_apps.py`` on the peers' gevent server) under callgrind,
drives them with the same keep-alive load client (``--connections`` at once),
and counts the server's machine instructions per request: everything the process
runs in user space (gevent's server, the HTTP parsing, the app and its session
layer, SQLite, the Redis client), per path, after a warm-up, with a fixed
PYTHONHASHSEED and the server alone on one core (``--no-pin``). Clock-driven work
of ours (touch saves, the sweep) is moved past the run (``http_apps.py --steady``).

What it does not count: the kernel's work (socket reads and writes, SQLite's
``pwrite`` into its log, Redis's own process), which CPU time includes. Both
paths of every app pay the same socket calls, so these ratios leave out a cost
common to both sides: a ratio of instructions is higher than the same ratio of
CPU time would be on a quiet machine, not lower.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import fnmatch
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from callgrind import Cores, counted, git_state, start_redis
from load import httpclient
from run import HTTP_PATHS, RESULTS, ROOT, Target, http_targets, machine, start

from tests.servers import free_port

#: (peer, ours) pairs whose ratio the report gives: the peer's instructions over ours on the same kind of store
PEER_PAIRS = (("beaker/file", "wsgisession/sqlite"), ("beaker/file", "wsgisession/file"),
              ("beaker/memory", "wsgisession/memory"), ("beaker/redis", "wsgisession/redis"),
              ("flask/file", "wsgisession/sqlite"), ("flask/file", "wsgisession/file"),
              ("flask/memory", "wsgisession/memory"), ("flask/redis", "wsgisession/redis"))


def measure(target: Target, outdir: Path, requests: int, warmup: int, connections: int, cores: Cores,
            hash_seed: int) -> dict[str, float]:
    """Start ``target`` under callgrind; its instructions per request of each path."""
    port = free_port()
    name = target.name.removeprefix("http:")
    out = outdir / name.replace("/", "-")
    argv = ["env", f"PYTHONHASHSEED={hash_seed}", "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out}.%p", *target.launch(port), "--steady"]
    proc = start(target.name, argv, port=port, logdir=outdir, cores=cores.server, timeout=180)
    found: dict[str, float] = {}
    try:
        cookie = httpclient.get_cookie(port, "/login")
        for path in HTTP_PATHS:
            httpclient.run(port, f"/{path}", cookie, connections=connections, requests=warmup, timeout=600)
            instructions, answer = counted(proc.pid, out, lambda: httpclient.run(
                port, f"/{path}", cookie, connections=connections, requests=requests, timeout=900))
            if answer["errors"] or answer["requests"] != requests:
                raise RuntimeError(f"/{path}: {answer['requests']} of {requests} answered 200, errors {answer['errors']}")
            if instructions is None:
                raise RuntimeError(f"/{path}: no summary in the dump of {out}")
            found[path] = instructions / requests
            print(f"  {name:22s} {path:6s} {found[path]:>12,.0f} instructions/request", flush=True)
    finally:
        proc.stop()
    return found


def report(results: dict[str, dict[str, float]]) -> tuple[str, dict[str, Any]]:
    """The table (instructions per request, over the bare app's) and the peers' ratios over ours."""
    bare = results.get("bare", {})
    lines = [f"{'app':22s} " + " ".join(f"{p + ' instr':>13s} {'/ bare':>7s}" for p in HTTP_PATHS)]
    over_bare: dict[str, dict[str, float]] = {}
    for name, found in results.items():
        cells = []
        for path in HTTP_PATHS:
            value, floor = found.get(path), bare.get(path)
            ratio = value / floor if value and floor else None
            if ratio is not None:
                over_bare.setdefault(name, {})[path] = ratio
            cells.append(f"{value or 0:>13,.0f} {ratio or 0:>6.2f}x")
        lines.append(f"{name:22s} " + " ".join(cells))
    peers: dict[str, dict[str, float]] = {}
    for peer, mine in PEER_PAIRS:
        if peer in results and mine in results:
            peers[f"{peer} / {mine}"] = {p: results[peer][p] / results[mine][p] for p in HTTP_PATHS
                                         if results[peer].get(p) and results[mine].get(p)}
    if peers:
        lines.append("")
        lines.append(f"{'peer / ours':45s} " + " ".join(f"{p:>7s}" for p in HTTP_PATHS))
        for pair, found in peers.items():
            lines.append(f"{pair:45s} " + " ".join(f"{found.get(p, 0):>6.2f}x" for p in HTTP_PATHS))
    return "\n".join(lines), {"over_bare": over_bare, "peers_over_ours": peers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="*", help="globs over the app names, e.g. 'bare,wsgisession/*'")
    parser.add_argument("--requests", type=int, default=600, help="counted requests per path and app")
    parser.add_argument("--warmup", type=int, default=200, help="uncounted requests per path before each count")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections at once (as run.py)")
    parser.add_argument("--hash-seed", type=int, default=0, help="the servers' PYTHONHASHSEED")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis apps even if redis-server exists")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server to a core of its own")
    parser.add_argument("--output", help="JSON results (default benchmarks/results/<date>-<host>-callgrind-http.json)")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is needed (apt-get install valgrind)")
    globs = [g.strip() for g in args.targets.split(",") if g.strip()]
    cpus = sorted(os.sched_getaffinity(0))
    cores = Cores() if args.no_pin or len(cpus) < 2 else Cores({cpus[0]}, {cpus[1]})
    if cores.client:
        os.sched_setaffinity(0, cores.client)  # the load client is this process
    try:
        import flask_session  # noqa: F401
        have = {"flask": True}
    except ImportError:
        have = {"flask": False}
    results: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="wsgisession-callgrind-http-") as tmp, contextlib.ExitStack() as stack:
        directory = Path(tmp)
        redis_url = None
        if not args.no_redis and shutil.which("redis-server") is not None:
            redis_url, redis_proc = start_redis(directory, 16, cores.client)
            stack.callback(redis_proc.stop)
        for target in http_targets(directory, redis_url, have):
            name = target.name.removeprefix("http:")
            if not any(fnmatch.fnmatch(name, g) for g in globs):
                continue
            try:
                results[name] = measure(target, directory, args.requests, args.warmup, args.connections, cores,
                                        args.hash_seed)
            except RuntimeError as exc:
                errors[name] = str(exc)
                print(f"  {name}: {exc}", file=sys.stderr, flush=True)
    table, derived = report(results)
    print(f"\nServer instructions per HTTP request ({args.connections} keep-alive connections, {args.requests} "
          f"requests per path after {args.warmup})\n{table}")
    for name, error in errors.items():
        print(f"\n{name} failed: {error.splitlines()[0]}")
    host = machine(args, cores.server, cores.client)
    stamp = datetime.date.today().isoformat()
    output = Path(args.output) if args.output else RESULTS / f"{stamp}-{host['host']}-callgrind-http.json"
    output.write_text(json.dumps({"command": sys.argv, "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                                  "sizes": vars(args), "git": git_state(ROOT),
                                  "instructions_per_request": results, **derived, "errors": errors,
                                  "machine": host}, indent=2) + "\n")
    print(f"\nraw results: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
