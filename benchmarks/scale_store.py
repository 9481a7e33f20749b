#!/usr/bin/env python3
"""Scale of the persistent stores: read and write cost, and the sweep, with 10k, 100k and 1M sessions stored.

    .venv/bin/python benchmarks/scale_store.py                                  # sqlite, file, redis; 10k,100k,1M
    .venv/bin/python benchmarks/scale_store.py --stores sqlite --levels 10000,100000

For each store and level, the store is filled to N sessions (records of the counter
example's size; a tenth of them expired), then, through :class:`wsgisession.store.Store`:

read
    ``store.read`` of random stored ids (CPU and wall microseconds per read, median of rounds);
write
    an update transaction (``store.transaction``: lock, read, write, commit) of a random id;
sweep
    what removing the expired tenth costs: SQLite, the bounded ``DELETE`` the writes run
    (``purge``, 1,000 rows; and until none is left); file, a walk of every file reading its
    record (the file store has no sweep: an abandoned session stays on disk until it is read);
    Redis expires keys by itself (``TTL``), nothing to measure.

Also the time to fill the store and its size on disk (file: ``du``; SQLite: the
database and its WAL; Redis: ``used_memory``). Redis runs as a private redis-server
without persistence. Results: a table, and JSON with ``--output``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, wait_for_port  # noqa: E402
from wsgisession.backends import sqlite as sqlite_backend  # noqa: E402
from wsgisession.ids import new_session_id  # noqa: E402
from wsgisession.store import Store  # noqa: E402

RECORD = '{"created":1796278256.5,"accessed":1796278256.5,"data":{"user":"ann","n":%d}}'


def fill_sqlite(store: Store, ids: list[str], expired: set[str]) -> None:
    """Rows straight into the table in big transactions (what N saves leave behind, minus their time)."""
    backend = store.backend
    assert isinstance(backend, sqlite_backend.SqliteBackend)
    writer = backend.database.writer()
    now = time.time()
    for start in range(0, len(ids), 50_000):
        chunk = ids[start:start + 50_000]
        writer.execute("BEGIN IMMEDIATE")
        writer.executemany(
            f"INSERT INTO {sqlite_backend.TABLE} VALUES (?, 'session', ?, ?)",
            [(sid, RECORD % n, now - 3600 if sid in expired else now + 3600) for n, sid in enumerate(chunk)])
        writer.execute("COMMIT")
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def fill(store: Store, ids: list[str], expired: set[str]) -> None:
    if store.name == "sqlite":
        fill_sqlite(store, ids, expired)
        return
    if store.name == "redis":
        client = store.backend.client  # type: ignore[attr-defined]
        for start in range(0, len(ids), 10_000):
            pipe = client.pipeline(transaction=False)
            for n, sid in enumerate(ids[start:start + 10_000]):
                pipe.set(f"wsgisession:{sid}:session", RECORD % n, ex=1 if sid in expired else 3600)
            pipe.execute()
        return
    for n, sid in enumerate(ids):
        store.write(sid, RECORD % n)


def per_op(run: Any, ids: list[str], rounds: int) -> dict[str, float]:
    cpu, wall = [], []
    for _ in range(rounds):
        c0, w0 = time.thread_time(), time.perf_counter()
        for sid in ids:
            run(sid)
        cpu.append((time.thread_time() - c0) / len(ids) * 1e6)
        wall.append((time.perf_counter() - w0) / len(ids) * 1e6)
    return {"cpu_us": statistics.median(cpu), "wall_us": statistics.median(wall)}


def update(store: Store) -> Any:
    def run(sid: str) -> None:
        with store.transaction(sid) as txn:
            txn.write(RECORD % len(txn.text or ""), 3600)
    return run


def sweep(store: Store, directory: Path, expired: set[str]) -> dict[str, Any]:
    if store.name == "sqlite":
        backend = store.backend
        assert isinstance(backend, sqlite_backend.SqliteBackend)
        later = time.time() + sqlite_backend.PURGE_GRACE + 1  # the grace has passed for the expired tenth
        t0 = time.perf_counter()
        first = backend.purge(now=later)
        one = time.perf_counter() - t0
        total, batches = first, 1
        while True:
            deleted = backend.purge(now=later)
            if not deleted:
                break
            total += deleted
            batches += 1
        return {"one_batch_ms": one * 1000, "batch_rows": first, "all_s": time.perf_counter() - t0,
                "rows": total, "batches": batches}
    if store.name == "file":
        t0 = time.perf_counter()
        files = 0
        for root, _, names in os.walk(directory / "wsgisession"):
            for name in names:
                if name.endswith(".json"):
                    with open(os.path.join(root, name), "rb") as fh:
                        json.loads(fh.read())
                    files += 1
        return {"walk_s": time.perf_counter() - t0, "files": files}
    return {"note": "Redis expires keys by their TTL"}


def disk_size(store: Store, directory: Path) -> float:
    if store.name == "redis":
        return float(store.backend.client.info("memory")["used_memory"]) / 1e6  # type: ignore[attr-defined]
    out = subprocess.run(["du", "-sk", str(directory)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite,file,redis")
    parser.add_argument("--levels", default="10000,100000,1000000")
    parser.add_argument("--ops", type=int, default=2000, help="reads and writes measured per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", help="where the stores live (default: a new temporary directory)")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    base = Path(args.dir or tempfile.mkdtemp(prefix="wsgisession-scale-"))
    redis_proc = None
    try:
        for store_name in args.stores.split(","):
            for level in (int(x) for x in args.levels.split(",")):
                directory = base / f"{store_name}-{level}"
                directory.mkdir(parents=True, exist_ok=True)
                if store_name == "redis":
                    if redis_proc is None:
                        port = free_port()
                        redis_proc = subprocess.Popen(
                            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(base)], stdout=subprocess.DEVNULL)
                        wait_for_port(port, timeout=10)
                    store = Store(type="ext:redis", url=f"redis://127.0.0.1:{port}/0")
                    store.backend.client.flushdb()  # type: ignore[attr-defined]
                else:
                    store = Store(type=store_name, data_dir=str(directory))
                ids = [new_session_id() for _ in range(level)]
                expired = set(random.sample(ids, level // 10))
                t0 = time.perf_counter()
                fill(store, ids, expired)
                filled = time.perf_counter() - t0
                live = [sid for sid in random.sample(ids, min(len(ids), args.ops * 2)) if sid not in expired]
                live = live[:args.ops]
                record: dict[str, Any] = {"store": store_name, "sessions": level, "fill_s": filled,
                                          "size_mb": disk_size(store, directory)}
                random.shuffle(live)
                record["read"] = per_op(store.read, live, args.rounds)
                record["write"] = per_op(update(store), live, args.rounds)
                record["sweep"] = sweep(store, directory, expired)
                results.append(record)
                print(json.dumps(record), flush=True)
                if store_name != "redis":
                    shutil.rmtree(directory, ignore_errors=True)
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    print(f"\n{'store':8} {'sessions':>9} {'fill s':>8} {'size MB':>8} {'read us':>8} {'write us':>9} "
          f"{'(wall)':>7}  sweep")
    for r in results:
        sweep_text = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r["sweep"].items())
        print(f"{r['store']:8} {r['sessions']:>9,} {r['fill_s']:>8.1f} {r['size_mb']:>8.1f} "
              f"{r['read']['cpu_us']:>8.1f} {r['write']['cpu_us']:>9.1f} {r['write']['wall_us']:>7.1f}  {sweep_text}")
    if args.output:
        Path(args.output).write_text(json.dumps({"argv": sys.argv, "date": time.strftime("%Y-%m-%d"),
                                                 "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
