#!/usr/bin/env python3
"""Several processes saving sessions in one SQLite store: what its group commit buys, and what it costs.

    .venv/bin/python benchmarks/sqlite_processes.py                      # 2 processes, 3 rounds
    .venv/bin/python benchmarks/sqlite_processes.py --processes 4 --seconds 5

Each process (forked, as gunicorn's workers are) opens the store
(``wsgisession.store.Store``, type ``sqlite``) and runs ``--greenlets``
greenlets, each on a session of its own, in a loop: a locked read-modify-write
(``store.transaction``: what ``atomic()`` and every merged save do), then
``--work-ms`` of sleep, the rest of a request or event. Rounds alternate
between the store as shipped (transactions of one turn of a process's event
loop share one ``COMMIT``: ``wsgisession.backends.sqlite.GROUP_MAX``) and every
transaction committing alone (``GROUP_MAX = 0``), on a new database each.

Reported per setting (medians over rounds): transactions per second of all
processes together, the slowest process's share, and the latency of a
transaction (from taking the locks to its commit being durable): p50, p99, max.
Raw numbers go to ``benchmarks/results/<date>-<host>-sqlite-processes.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent.monkey

gevent.monkey.patch_all()

import gevent  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wsgisession.backends import sqlite as sqlite_backend  # noqa: E402
from wsgisession.ids import new_session_id  # noqa: E402
from wsgisession.store import Store  # noqa: E402

SETTINGS = {"grouped": sqlite_backend.GROUP_MAX, "alone": 0}


def worker(directory: str, group_max: int, greenlets: int, seconds: float, work: float) -> dict[str, Any]:
    """One process's loop: its greenlets' transactions until the time is up; its counts and latencies."""
    sqlite_backend.GROUP_MAX = group_max
    store = Store(type="sqlite", data_dir=directory)
    latencies: list[float] = []
    end = time.monotonic() + seconds
    padding = "x" * 200

    def loop() -> None:
        sid, n = new_session_id(), 0
        while time.monotonic() < end:
            started = time.perf_counter()
            with store.transaction(sid) as txn:
                n = json.loads(txn.text)["n"] + 1 if txn.text else 1
                txn.write(json.dumps({"n": n, "pad": padding}), 3600)
            latencies.append(time.perf_counter() - started)
            gevent.sleep(work)

    gevent.joinall([gevent.spawn(loop) for _ in range(greenlets)], raise_error=True)
    latencies.sort()
    database = store.backend.database  # type: ignore[attr-defined]
    # as large as the log ever grew (never truncated), read while the store is open: the last process to
    # close its connections checkpoints the log and removes it
    wal = Path(directory) / (sqlite_backend.FILE_NAME + "-wal")
    return {
        "log_mb": wal.stat().st_size / 1e6 if wal.exists() else 0.0,
        "checkpoints": database.checkpoints, "restarts": database.restarts,
        "transactions": len(latencies),
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "max_ms": latencies[-1] * 1e3,
    }


def round_of(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    """Fork the processes on a new database; wait for their reports."""
    directory = tempfile.mkdtemp(prefix=f"wsgisession-bench-{setting}-")
    Store(type="sqlite", data_dir=directory)  # created before the fork, as a preloaded app does
    children: list[tuple[int, Path]] = []
    for n in range(args.processes):
        report_file = Path(directory) / f"report-{n}.json"
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                report = worker(directory, SETTINGS[setting], args.greenlets, args.seconds, args.work_ms / 1000)
                report_file.write_text(json.dumps(report))
                code = 0
            finally:
                os._exit(code)
        children.append((pid, report_file))
    reports = []
    for pid, report_file in children:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"a {setting} process failed (exit status {status})")
        reports.append(json.loads(report_file.read_text()))
    total = sum(r["transactions"] for r in reports)
    return {
        "setting": setting,
        "log_mb": max(r["log_mb"] for r in reports),
        "checkpoints": sum(r["checkpoints"] for r in reports), "restarts": sum(r["restarts"] for r in reports),
        "per_second": total / args.seconds,
        "slowest_share": min(r["transactions"] for r in reports) / total * args.processes,
        "p50_ms": statistics.median(r["p50_ms"] for r in reports),
        "p99_ms": max(r["p99_ms"] for r in reports),
        "max_ms": max(r["max_ms"] for r in reports),
        "processes": reports,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--greenlets", type=int, default=50, help="per process, one session each")
    parser.add_argument("--seconds", type=float, default=4.0, help="per round and setting")
    parser.add_argument("--work-ms", type=float, default=0.5, help="sleep between a greenlet's transactions")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    rounds: list[dict[str, Any]] = []
    for n in range(args.rounds):
        for setting in (SETTINGS if n % 2 == 0 else reversed(list(SETTINGS))):
            result = round_of(setting, args)
            rounds.append(result)
            print(f"round {n + 1} {setting:8s} {result['per_second']:8.0f} txn/s  p50 {result['p50_ms']:.2f} ms  "
                  f"p99 {result['p99_ms']:.1f} ms  max {result['max_ms']:.0f} ms  log {result['log_mb']:.1f} MB "
                  f"(checkpoints {result['checkpoints']}, restarted {result['restarts']})", flush=True)
    summary: dict[str, Any] = {}
    for setting in SETTINGS:
        mine = [r for r in rounds if r["setting"] == setting]
        summary[setting] = {key: statistics.median(r[key] for r in mine)
                            for key in ("per_second", "slowest_share", "p50_ms", "p99_ms", "max_ms", "log_mb")}
    print(f"\n{args.processes} processes x {args.greenlets} greenlets, {args.work_ms} ms of work between "
          f"transactions, median of {args.rounds} rounds")
    print(f"{'setting':8s} {'txn/s':>8s} {'slowest':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s} {'log MB':>7s}")
    for setting, row in summary.items():
        print(f"{setting:8s} {row['per_second']:8.0f} {row['slowest_share']:8.2f} {row['p50_ms']:7.2f} "
              f"{row['p99_ms']:7.1f} {row['max_ms']:7.0f} {row['log_mb']:7.1f}")
    ratio = summary["grouped"]["per_second"] / summary["alone"]["per_second"]
    print(f"grouped / alone: {ratio:.2f}x the transactions per second")
    output = args.output or ROOT / "benchmarks" / "results" / (
        f"{time.strftime('%Y-%m-%d')}-{socket.gethostname().split('.')[0]}-sqlite-processes.json")
    output.write_text(json.dumps({
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"python": platform.python_version(), "sqlite": sqlite_backend.sqlite3.sqlite_version,
                    "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "args": {k: v for k, v in vars(args).items() if k != "output"},
        "summary": summary, "ratio_grouped_over_alone": ratio, "rounds": rounds,
    }, indent=1, default=str))
    print(f"raw results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
