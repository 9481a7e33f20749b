#!/usr/bin/env python3
"""wsgisession's benchmarks: the counter example and its peers, measured in one run.

    .venv/bin/python benchmarks/run.py            # the full run (~5 minutes)
    .venv/bin/python benchmarks/run.py --quick    # ~1 minute, smaller sizes
    .venv/bin/python benchmarks/run.py --scale    # adds 100 / 1,000 / 10,000 connections

It starts every server on a free port of 127.0.0.1 (the counter example under
``wsgisession serve`` on the memory, file and Redis stores, with and without
locks; the peers under benchmarks/peers/; gunicorn with our worker), pins the
servers to one core and the load client (benchmarks/load/client.js, node) to the
other, and runs the sections in interleaved rounds:

events     N clients x M acked websocket events: echo, whoami (read), incr (atomic
           read-modify-write); events/s, p50/p99, server CPU per event.
mixed      HTTP POST /incr and socket incr at once on each session; ops/s, p50/p99,
           lost updates; locking on vs off.
keepalive  sequential keep-alive HTTP requests: p50/p99, 40 ms Nagle stalls.
scale      (--scale) N concurrent sockets with sessions: connect rate, memory per
           connection, events/s and p99.

Medians over rounds are printed as tables; the raw numbers, the machine and the
command line go to benchmarks/results/<date>-<host>.json. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import fnmatch
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
PEERS = HERE / "peers"
NODE_PEER = PEERS / "node"
LOAD_CLIENT = HERE / "load" / "client.js"
RESULTS = HERE / "results"
SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from load import httpclient  # noqa: E402
from tests.servers import child_env, free_port, wait_for_port, write_ini  # noqa: E402

WORKLOADS = ("echo", "whoami", "incr")


# -- sizes ------------------------------------------------------------------
@dataclass
class Sizes:
    rounds: int = 3
    clients: int = 50  # events: sockets, one session each
    events: int = 150  # events: acked events per socket per workload
    warmup: int = 50  # events: untimed events per socket per workload, each round (with 10 the first
    # measured workload of a round often ran 10-30% slower than the same workload later in the round)
    mixed_sessions: int = 10
    mixed_http: int = 4  # concurrent HTTP loops per session
    mixed_sockets: int = 4  # concurrent socket loops (sockets) per session
    mixed_ops: int = 25  # operations per loop
    keepalive: int = 100  # sequential requests per server per round
    http_requests: int = 3000  # http: requests per path per server per round, over the network
    http_connections: int = 8  # http: concurrent keep-alive connections
    http_inprocess: int = 2000  # http: requests per path per app per round, in process
    scale_levels: tuple[int, ...] = (100, 1000, 10000)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(rounds=2, clients=20, events=50, warmup=5, mixed_sessions=4, mixed_ops=15, keepalive=30,
                   http_requests=1000, http_inprocess=500, scale_levels=(100, 1000))


# -- processes and /proc ------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads (schedstat: ns; stat: clock ticks as a fallback)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        if total:
            return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return stat_cpu_seconds(pid)


def stat_cpu_seconds(pid: int) -> float:
    """utime + stime from /proc/<pid>/stat (10 ms resolution; includes exited threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def core_ticks(cores: set[int] | None) -> tuple[int, int]:
    """(busy, total) clock ticks of some cores, from /proc/stat (iowait counts as idle)."""
    busy = total = 0
    if not cores:
        return 0, 0
    with contextlib.suppress(OSError):
        for line in open("/proc/stat"):
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                ticks = [int(v) for v in values[:8]]
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pin_all(pid: int, cores: set[int] | None) -> None:
    """Pin every thread of a running process (and its children) to ``cores``."""
    if not cores:
        return
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cores)
    with contextlib.suppress(OSError):
        for child in open(f"/proc/{pid}/task/{pid}/children").read().split():
            pin_all(int(child), cores)


@dataclass
class Proc:
    """A server process started by this run."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, argv: list[str], *, port: int, logdir: Path, cores: set[int] | None,
          cwd: Path = ROOT, ready: Callable[[Proc], bool] | None = None, timeout: float = 30) -> Proc:
    log = logdir / f"{name.replace('/', '-')}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env(), cwd=cwd,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )
    proc = Proc(name, process, port, log)
    try:
        wait_for_port(port, timeout=timeout, process=process)
        deadline = time.monotonic() + timeout
        while ready is not None and not ready(proc):
            if time.monotonic() > deadline or not proc.alive():
                raise RuntimeError("not ready")
            time.sleep(0.05)
    except (RuntimeError, TimeoutError) as exc:
        proc.stop()
        raise RuntimeError(f"{name} did not start ({exc}):\n{proc.tail()}") from exc
    pin_all(proc.pid, cores)
    return proc


# -- the load client ----------------------------------------------------------
class LoadClient:
    """benchmarks/load/client.js, one JSON command a line."""

    def __init__(self, url: str, cores: set[int] | None, logdir: Path) -> None:
        self.stderr = open(logdir / "load-client.log", "ab")
        self.process = subprocess.Popen(
            ["node", str(LOAD_CLIENT), url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            cwd=ROOT, preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )

    def call(self, command: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        command = dict(command, timeout_s=timeout)
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout + 30)
        if not ready:
            raise RuntimeError(f"the load client did not answer {command['cmd']} in {timeout + 30}s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load client exited ({self.process.poll()}) during {command['cmd']}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call({"cmd": "close"}, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


@contextlib.contextmanager
def load_client(url: str, cores: set[int] | None, logdir: Path) -> Iterator[LoadClient]:
    client = LoadClient(url, cores, logdir)
    try:
        yield client
    finally:
        client.close()


# -- targets ------------------------------------------------------------------
@dataclass
class Target:
    """One server under test: our counter on one store, or a peer."""

    name: str  # e.g. "wsgisession/file"
    stack: str  # wsgisession, bare, beaker, flask, node
    store: str  # memory, file, redis, none
    workloads: tuple[str, ...] = WORKLOADS
    mixed: bool = True
    locking: bool | None = None  # ours: on or off; peers: None (they have no session locks)
    launch: Callable[[int], list[str]] = field(default=lambda port: [], repr=False)
    cwd: Path = ROOT
    proc: Proc | None = None
    store_pid: int | None = None  # redis-server's pid, for the store's CPU
    error: str | None = None


def ours(store: str, directory: Path, redis_url: str | None, *, locking: bool = True,
         workloads: tuple[str, ...] = WORKLOADS, file_root: Path | None = None, sync: bool = False) -> Target:
    name = f"wsgisession/{store}" + ("" if locking else "/nolock") + ("/sync" if sync else "")
    settings: dict[str, Any] = {"beaker.session.secret": SECRET, "beaker.session.timeout": 3600}
    if store == "redis":
        settings.update({"beaker.session.type": "ext:redis", "beaker.session.url": redis_url,
                         "beaker.session.data_dir": None})
    elif store == "memory":
        settings.update({"beaker.session.type": "memory", "beaker.session.data_dir": None})
    else:  # sqlite or file
        settings["beaker.session.type"] = store
        settings["beaker.session.data_dir"] = str((file_root or directory) / name.replace("/", "-"))
    if not locking:
        settings["wsgisession.locking"] = "false"
    if sync:  # python-socketio's async_handlers=False: a connection's events run in order, in its reader
        settings["socketio.async_handlers"] = "false"
    ini = write_ini(directory, name=name.replace("/", "-") + ".ini", **settings)
    return Target(name, "wsgisession", store, workloads=workloads, locking=locking,
                  launch=lambda port: [str(BIN / "wsgisession"), "serve", str(ini), "--port", str(port)])


def python_peer(script: str, *args: str) -> Callable[[int], list[str]]:
    return lambda port: [sys.executable, str(PEERS / script), "--port", str(port), *args]


def node_peer(args: list[str]) -> Callable[[int], list[str]]:
    return lambda port: ["node", str(NODE_PEER / "server.js"), "--port", str(port), *args]


def build_targets(directory: Path, redis_url: str | None, have: dict[str, bool],
                  file_root: Path) -> tuple[list[Target], list[str]]:
    """Every server of the run, and the reasons some are left out."""
    stores = ["memory", "sqlite", "file"] + (["redis"] if redis_url else [])
    targets = [ours(store, directory, redis_url, file_root=file_root) for store in stores]
    targets += [ours(store, directory, redis_url, locking=False, workloads=("incr",), file_root=file_root)
                for store in stores]
    targets += [ours(store, directory, redis_url, file_root=file_root, sync=True)
                for store in stores if store not in ("file", "sqlite")]
    targets.append(Target("bare-socketio", "bare", "none", workloads=("echo",), mixed=False,
                          launch=python_peer("bare_socketio.py")))
    for store in ["file"] + (["redis"] if redis_url else []):
        backend = ["--type", "file", "--data-dir", str(file_root / "beaker")] if store == "file" else \
            ["--type", "ext:redis", "--url", str(redis_url).replace("/0", "/2")]
        targets.append(Target(f"beaker/{store}", "beaker", store, launch=python_peer("beaker_socketio.py", *backend)))
    skipped = []
    if have["flask"]:
        for store in ["memory", "file"] + (["redis"] if redis_url else []):
            backend = {"memory": ["--type", "memory"],
                       "file": ["--type", "filesystem", "--data-dir", str(file_root / "flask")],
                       "redis": ["--type", "redis", "--url", str(redis_url).replace("/0", "/3")]}[store]
            targets.append(Target(f"flask/{store}", "flask", store,
                                  launch=python_peer("flask_socketio_peer.py", *backend)))
    else:
        skipped.append("flask: Flask-SocketIO / Flask-Session not installed "
                       "(.venv/bin/pip install -r benchmarks/requirements.txt)")
    if have["node_peer"]:
        for store in ["memory"] + (["redis"] if redis_url else []):
            backend = ["--store", store] + (["--url", str(redis_url).replace("/0", "/4")] if store == "redis" else [])
            targets.append(Target(f"node/{store}", "node", store, cwd=NODE_PEER, launch=node_peer(backend)))
    else:
        skipped.append("node: benchmarks/peers/node/node_modules missing (npm install --prefix benchmarks/peers/node)")
    if not redis_url:
        skipped.append("redis: redis-server not found (apt-get install -y redis-server)")
    return targets, skipped


HTTP_APPS = PEERS / "http_apps.py"
HTTP_PATHS = ("read", "write")


def http_targets(directory: Path, redis_url: str | None, have: dict[str, bool]) -> list[Target]:
    """The HTTP path's servers (benchmarks/peers/http_apps.py, one app each, on the peers' server)."""
    names = ["bare", "wsgisession/memory", "wsgisession/sqlite", "wsgisession/file", "beaker/memory", "beaker/file"]
    if have["flask"]:
        names += ["flask", "flask/memory", "flask/file"]
    if redis_url:
        names += ["wsgisession/redis", "beaker/redis"] + (["flask/redis"] if have["flask"] else [])
    targets = []
    for n, name in enumerate(names):
        stack, _, store = name.partition("/")
        args = ["--app", name, "--dir", str(directory / f"http-{name.replace('/', '-')}")]
        if store == "redis":
            args += ["--redis-url", str(redis_url).replace("/0", f"/{5 + n % 3}")]
        targets.append(Target(f"http:{name}", stack, store or "none", workloads=(), mixed=False,
                              launch=lambda port, args=args: [sys.executable, str(HTTP_APPS), *args,
                                                              "--port", str(port)]))
    return targets


# -- measuring ----------------------------------------------------------------
bench_cores: dict[str, set[int] | None] = {}
redis_stats: dict[str, Any] = {}  # "url": the run's redis-server, for INFO commandstats
READS = "(reads)"  # redis_calls()'s entry for redis-server's socket reads, not a command


def redis_calls() -> dict[str, int] | None:
    """Calls per command so far on the run's redis-server (all targets share it; one runs at a time)."""
    url = redis_stats.get("url")
    if not url:
        return None
    try:
        import redis

        client = redis_stats.get("client") or redis.Redis.from_url(url)
        redis_stats["client"] = client
        info = client.info("commandstats")
        reads = int(client.info("stats").get("total_reads_processed", 0))
    except Exception:  # noqa: BLE001 - statistics only
        return None
    calls = {name.replace("cmdstat_", ""): int(value["calls"]) for name, value in info.items()}
    calls[READS] = reads  # socket reads (a read can bring several pipelined commands)
    return calls


def measure(target: Target, client: LoadClient, command: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """Run one load command; the server's (and store's) CPU over it."""
    assert target.proc is not None
    pid = target.proc.pid
    cpu0, stat0 = cpu_seconds(pid), stat_cpu_seconds(pid)
    store0 = cpu_seconds(target.store_pid) if target.store_pid else 0.0
    cores = bench_cores.get("server")
    calls0 = redis_calls() if target.store == "redis" else None
    busy0, total0 = core_ticks(cores)
    wall0 = time.perf_counter()
    answer = client.call(command, timeout=timeout)
    wall = time.perf_counter() - wall0
    busy1, total1 = core_ticks(cores)
    calls1 = redis_calls() if calls0 is not None else None
    if calls0 is not None and calls1 is not None:
        calls = {k: v - calls0.get(k, 0) for k, v in calls1.items() if v - calls0.get(k, 0) > 0}
        calls.pop("info", None)  # our own INFO
        answer["store_reads"] = calls.pop(READS, None)
        answer["store_commands"] = calls
    if total1 > total0:
        # what else kept the server's core busy (another process: the machine is not quiet)
        ours_s = (cpu_seconds(pid) - cpu0) + ((cpu_seconds(target.store_pid) - store0) if target.store_pid else 0)
        core_busy = (busy1 - busy0) / (total1 - total0)
        answer["server_core_busy"] = core_busy
        answer["server_core_others"] = max(0.0, core_busy - ours_s / wall)
    answer["server_cpu_s"] = cpu_seconds(pid) - cpu0
    answer["server_stat_cpu_s"] = stat_cpu_seconds(pid) - stat0
    answer["store_cpu_s"] = (cpu_seconds(target.store_pid) - store0) if target.store_pid else None
    answer["wall_s"] = wall
    answer["server_rss_mb"] = rss_mb(pid)
    return answer


def event_record(target: Target, workload: str, rnd: int, answer: dict[str, Any]) -> dict[str, Any]:
    latency = answer.get("latency") or {}
    count = answer.get("acked") or 0
    elapsed = answer.get("elapsed_s") or 0.0
    return {
        "section": "events", "round": rnd, "target": target.name, "workload": workload,
        "ok": bool(answer.get("ok")) and count == answer.get("expected"),
        "events": count, "expected": answer.get("expected"), "bad_acks": answer.get("bad_acks"),
        "disconnects": answer.get("disconnects"), "error": answer.get("error"),
        "elapsed_s": elapsed,
        "events_per_s": count / elapsed if elapsed else None,
        "p50_us": latency.get("p50_us"), "p90_us": latency.get("p90_us"), "p99_us": latency.get("p99_us"),
        "max_us": latency.get("max_us"), "mean_us": latency.get("mean_us"),
        "server_cpu_s": answer["server_cpu_s"], "server_stat_cpu_s": answer["server_stat_cpu_s"],
        "server_cpu_us_per_event": answer["server_cpu_s"] / count * 1e6 if count else None,
        "server_cpu_util": answer["server_cpu_s"] / elapsed if elapsed else None,
        "store_cpu_us_per_event": answer["store_cpu_s"] / count * 1e6 if count and answer["store_cpu_s"] is not None
        else None,
        "client_cpu_s": answer.get("client_cpu_s"),
        "client_cpu_util": answer.get("client_cpu_s", 0) / elapsed if elapsed else None,
        "server_rss_mb": answer["server_rss_mb"],
        "server_core_others": answer.get("server_core_others"),
        "store_commands": answer.get("store_commands"),
        "store_commands_per_event": sum(answer["store_commands"].values()) / count
        if count and answer.get("store_commands") is not None else None,
        "store_reads_per_event": answer["store_reads"] / count if count and answer.get("store_reads") is not None
        else None,
    }


def rotate(items: list[Any], by: int) -> list[Any]:
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


class Run:
    def __init__(self, args: argparse.Namespace, sizes: Sizes, workdir: Path) -> None:
        self.args = args
        self.sizes = sizes
        self.workdir = workdir
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        cpus = sorted(os.sched_getaffinity(0))
        if args.no_pin or len(cpus) < 2:
            self.server_cores = self.client_cores = None
        else:
            self.server_cores, self.client_cores = {cpus[0]}, {cpus[1]}
        bench_cores["server"] = self.server_cores
        self.records: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.stack = contextlib.ExitStack()
        self.redis_url: str | None = None
        self.redis_pid: int | None = None
        self.sessions_made = 0
        self.profiles: dict[str, Any] = {}

    def log(self, message: str) -> None:
        sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
        sys.stderr.flush()

    # -- servers ---------------------------------------------------------------
    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None or self.args.no_redis:
            return
        port = free_port()
        proc = start("redis-server", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir), "--databases", "8"],
                     port=port, logdir=self.logdir,
                     cores=self.client_cores if self.args.redis_core == "client" else self.server_cores)
        self.stack.callback(proc.stop)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.redis_pid = proc.pid
        redis_stats["url"] = self.redis_url

    def start_target(self, target: Target) -> bool:
        port = free_port()
        try:
            target.proc = start(target.name, target.launch(port), port=port, logdir=self.logdir,
                                cores=self.server_cores, cwd=target.cwd)
        except RuntimeError as exc:
            target.error = str(exc)
            self.notes.append(f"{target.name}: did not start: {str(exc).splitlines()[0]}")
            self.log(f"{target.name} did not start:\n{exc}")
            return False
        self.stack.callback(target.proc.stop)
        if target.store == "redis":
            target.store_pid = self.redis_pid
        return True

    def usable(self, target: Target) -> bool:
        if target.proc is None or target.error:
            return False
        if not target.proc.alive():
            target.error = f"exited with {target.proc.process.returncode}"
            self.notes.append(f"{target.name}: {target.error}:\n{target.proc.tail()}")
            return False
        return True

    def prefix(self) -> str:
        self.sessions_made += 1
        return f"b{self.sessions_made}x"

    # -- section 1 and 3: events -----------------------------------------------
    def events_round(self, target: Target, rnd: int) -> None:
        size = self.sizes
        assert target.proc is not None
        with load_client(target.proc.url, self.client_cores, self.logdir) as client:
            login = client.call({"cmd": "login", "sessions": size.clients, "prefix": self.prefix()})
            connect = client.call({"cmd": "connect", "per_session": 1})
            if not login.get("ok") or connect.get("connected") != size.clients:
                self.fail(target, "events", rnd, {"login": login, "connect": connect})
                return
            workloads = rotate(list(target.workloads), rnd)
            if size.warmup:
                for workload in workloads:
                    client.call({"cmd": "events", "event": workload, "per_socket": size.warmup})
            for workload in workloads:
                answer = measure(target, client, {"cmd": "events", "event": workload, "per_socket": size.events})
                record = event_record(target, workload, rnd, answer)
                self.records.append(record)
                if not record["ok"]:
                    self.log(f"  {target.name} {workload}: {record['events']}/{record['expected']} acked "
                             f"({answer.get('error') or 'bad acks: ' + str(answer.get('bad_acks'))})")
            done = [r for r in self.records[-len(workloads):]]
            self.log(f"  {target.name:26} " + "  ".join(
                f"{r['workload']} {r['events_per_s'] or 0:7.0f}/s {r['server_cpu_us_per_event'] or 0:5.0f}us"
                for r in done))

    def fail(self, target: Target, section: str, rnd: int, detail: dict[str, Any]) -> None:
        self.records.append({"section": section, "round": rnd, "target": target.name, "ok": False,
                             "error": "setup failed", "detail": detail})
        self.log(f"  {target.name}: {section} setup failed: {json.dumps(detail)[:300]}")

    # -- section 2: mixed HTTP + socket --------------------------------------------
    def mixed_round(self, target: Target, rnd: int) -> None:
        size = self.sizes
        assert target.proc is not None
        with load_client(target.proc.url, self.client_cores, self.logdir) as client:
            login = client.call({"cmd": "login", "sessions": size.mixed_sessions, "prefix": self.prefix()})
            connect = client.call({"cmd": "connect", "per_session": size.mixed_sockets})
            if not login.get("ok") or connect.get("connected") != size.mixed_sessions * size.mixed_sockets:
                self.fail(target, "mixed", rnd, {"login": login, "connect": connect})
                return
            answer = measure(target, client, {"cmd": "mixed", "http_loops": size.mixed_http,
                                              "socket_loops": size.mixed_sockets, "per_loop": size.mixed_ops})
        ops, elapsed = answer.get("ops") or 0, answer.get("ops_elapsed_s") or 0.0
        http, sock = answer.get("http") or {}, answer.get("socket") or {}
        expected = size.mixed_sessions * (size.mixed_http + size.mixed_sockets) * size.mixed_ops
        record = {
            "section": "mixed", "round": rnd, "target": target.name, "locking": target.locking,
            "ok": bool(answer.get("ok")), "error": answer.get("error"),
            "ops": ops, "expected_ops": expected, "elapsed_s": elapsed, "ops_per_s": ops / elapsed if elapsed else None,
            "acked": answer.get("acked"), "counted": answer.get("counted"), "lost": answer.get("lost"),
            "extra": answer.get("extra"), "unreadable": answer.get("unreadable"),
            "http_errors": answer.get("http_errors"), "bad_acks": answer.get("bad_acks"),
            "http_p50_us": http.get("p50_us"), "http_p99_us": http.get("p99_us"),
            "socket_p50_us": sock.get("p50_us"), "socket_p99_us": sock.get("p99_us"),
            "server_cpu_s": answer["server_cpu_s"],
            "server_cpu_us_per_op": answer["server_cpu_s"] / ops * 1e6 if ops else None,
            "store_cpu_us_per_op": answer["store_cpu_s"] / ops * 1e6 if ops and answer["store_cpu_s"] is not None
            else None,
            "client_cpu_util": answer.get("client_cpu_s", 0) / answer["elapsed_s"] if answer.get("elapsed_s") else None,
            "server_core_others": answer.get("server_core_others"),
            "store_commands_per_op": sum(answer["store_commands"].values()) / ops
            if ops and answer.get("store_commands") is not None else None,
        }
        self.records.append(record)
        self.log(f"  {target.name:26} mixed {record['ops_per_s'] or 0:7.0f} ops/s  acked {record['acked']}  "
                 f"lost {record['lost']}  errors {record['http_errors'] or ''}")

    # -- section 4: keep-alive HTTP latency -----------------------------------------
    def keepalive_servers(self, directory: Path) -> list[Target]:
        ini = write_ini(directory, name="keepalive.ini", **{"beaker.session.secret": SECRET,
                                                          "beaker.session.data_dir": str(directory / "keepalive")})
        gunicorn = [str(BIN / "gunicorn"), "--paste", str(ini), "-c", str(ROOT / "conf" / "gunicorn.conf.py"),
                    "-w", "1", "--no-control-socket"]
        servers = [
            Target("wsgisession serve", "wsgisession", "file", mixed=False,
                   launch=lambda port: [str(BIN / "wsgisession"), "serve", str(ini), "--port", str(port)]),
            Target("gunicorn wsgisession.server.Worker", "wsgisession", "file", mixed=False,
                   launch=lambda port: [*gunicorn, "-b", f"127.0.0.1:{port}"]),
        ]
        if not self.args.no_stock:
            servers += [
                Target("stock pywsgi (Nagle on)", "stock", "file", mixed=False,
                       launch=python_peer("stock_pywsgi.py", "--ini", str(ini), "--nagle")),
                Target("gunicorn GeventWebSocketWorker", "stock", "file", mixed=False,
                       launch=lambda port: [*gunicorn, "-b", f"127.0.0.1:{port}", "-k",
                                            "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"]),
            ]
        return servers

    def keepalive_round(self, target: Target, rnd: int) -> None:
        import http.client

        assert target.proc is not None
        count = self.sizes.keepalive
        conn = http.client.HTTPConnection("127.0.0.1", target.proc.port, timeout=10)
        conn.request("POST", f"/login?user={self.prefix()}")
        response = conn.getresponse()
        response.read()
        cookie = "; ".join(c.split(";")[0] for c in response.headers.get_all("Set-Cookie") or [])
        latencies = []
        reconnects = 0
        for _ in range(count):
            sock = conn.sock
            t0 = time.perf_counter()
            conn.request("GET", "/n", headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            latencies.append((time.perf_counter() - t0) * 1e6)
            if response.status != 200:
                raise RuntimeError(f"{target.name}: GET /n answered {response.status}")
            if sock is not None and conn.sock is not sock:
                reconnects += 1
        conn.close()
        latencies.sort()
        record: dict[str, Any] = {
            "section": "keepalive", "round": rnd, "target": target.name, "ok": True, "requests": count,
            "p50_us": latencies[len(latencies) // 2], "p90_us": latencies[int(0.9 * count)],
            "p99_us": latencies[min(count - 1, int(0.99 * count))], "max_us": latencies[-1],
            "stalls_over_30ms": sum(1 for x in latencies if x > 30_000), "reconnects": reconnects,
        }
        self.records.append(record)
        self.log(f"  {target.name:34} p50 {record['p50_us'] / 1000:6.2f} ms  p99 {record['p99_us'] / 1000:6.2f} ms"
                 f"  stalls {record['stalls_over_30ms']}/{count}")

    # -- section 6: the HTTP path ----------------------------------------------------
    def http_round(self, target: Target, rnd: int) -> None:
        """A request that reads the session and one that writes it, over the network: rate and server CPU."""
        assert target.proc is not None
        size = self.sizes
        port, pid = target.proc.port, target.proc.pid
        try:
            cookie = httpclient.get_cookie(port, "/login")
            for path in rotate(list(HTTP_PATHS), rnd):
                httpclient.run(port, f"/{path}", cookie, connections=size.http_connections,
                               requests=max(100, size.http_requests // 10))  # warm-up
                cpu0 = cpu_seconds(pid)
                answer = httpclient.run(port, f"/{path}", cookie, connections=size.http_connections,
                                        requests=size.http_requests)
                cpu = cpu_seconds(pid) - cpu0
                done = answer["requests"]
                record = {"section": "http", "round": rnd, "target": target.name, "path": path,
                          "ok": done == size.http_requests and not answer["errors"], **answer,
                          "server_cpu_s": cpu, "server_cpu_us_per_request": cpu / done * 1e6 if done else None,
                          "server_cpu_util": cpu / answer["elapsed_s"] if answer["elapsed_s"] else None}
                self.records.append(record)
                self.log(f"  {target.name:26} {path:5} {record['requests_per_s'] or 0:7.0f} req/s "
                         f"{record['server_cpu_us_per_request'] or 0:5.0f} us/req  errors {answer['errors'] or ''}")
        except (OSError, RuntimeError) as exc:
            self.fail(target, "http", rnd, {"error": str(exc)})

    def http_inprocess_round(self, target: Target, rnd: int) -> None:
        """The same app called as a WSGI callable in a process of its own on the server's core: CPU per request."""
        argv = target.launch(0)[:-2] + ["--inprocess", str(self.sizes.http_inprocess), "--rounds", "1"]
        cores = self.server_cores
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=child_env(), cwd=ROOT,
                                 preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
            answer = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
        except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
            answer, out = None, None
            self.notes.append(f"{target.name} in process: {exc}")
        if answer is None:
            self.fail(target, "http_inprocess", rnd, {"stderr": (out.stderr[-500:] if out else "")})
            return
        for path in HTTP_PATHS:
            self.records.append({"section": "http_inprocess", "round": rnd, "target": target.name, "path": path,
                                 "ok": True, "cpu_us_per_request": answer[path]["cpu_us"],
                                 "wall_us_per_request": answer[path]["wall_us"],
                                 "requests": self.sizes.http_inprocess})
        self.log(f"  {target.name:26} in process: read {answer['read']['cpu_us']:5.1f} us, "
                 f"write {answer['write']['cpu_us']:5.1f} us")

    # -- profiles (--profile): py-spy on our server, after the measured rounds ----------
    def profile(self, target: Target, stamp: str) -> dict[str, Any]:
        """Sample the server with py-spy while it serves echo and incr; where the time goes."""
        spy_bin = BIN / "py-spy"
        if not spy_bin.exists():
            self.notes.append("profile: py-spy is not installed (pip install -r benchmarks/requirements.txt)")
            return {}
        assert target.proc is not None
        size = self.sizes
        out: dict[str, Any] = {}
        directory = RESULTS / "profiles"
        directory.mkdir(parents=True, exist_ok=True)
        with load_client(target.proc.url, self.client_cores, self.logdir) as client:
            client.call({"cmd": "login", "sessions": size.clients, "prefix": self.prefix()})
            client.call({"cmd": "connect", "per_session": 1})
            for workload in [w for w in ("echo", "incr") if w in target.workloads]:
                client.call({"cmd": "events", "event": workload, "per_socket": size.warmup or 10})
                raw = directory / f"{stamp}-{target.name.replace('/', '-')}-{workload}.txt"
                spy = subprocess.Popen([str(spy_bin), "record", "--pid", str(target.proc.pid), "--rate", "500",
                                        "--format", "raw", "--nonblocking", "-o", str(raw)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(1.0)  # attach
                answer = client.call({"cmd": "events", "event": workload, "per_socket": size.events * 2})
                spy.send_signal(signal.SIGINT)
                try:
                    _, err = spy.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    _, err = spy.communicate()
                if not raw.exists():
                    self.notes.append(f"profile {target.name} {workload}: py-spy wrote nothing: "
                                      f"{err.decode(errors='replace').strip()[-300:]}")
                    continue
                out[workload] = {"file": str(raw.relative_to(ROOT)), "events": answer.get("acked"),
                                 **collapsed_summary(raw)}
                self.log(f"  profile {target.name} {workload}: {out[workload]['samples']} samples -> {raw.name}")
        return out

    # -- section 5: scale ----------------------------------------------------------
    def scale(self, directory: Path) -> None:
        store = self.args.scale_store
        if store == "redis" and not self.redis_url:
            self.notes.append("scale: redis-server missing; scale ran on the file store")
            store = "file"
        for level in self.sizes.scale_levels:
            (directory / f"scale-{level}").mkdir(exist_ok=True)
            target = ours(store, directory / f"scale-{level}", self.redis_url)
            target.name = f"wsgisession/{store} x{level}"
            if not self.start_target(target):
                continue
            assert target.proc is not None
            per_socket = max(2, min(50, 20000 // level))
            timeout = 120 + level / 20
            try:
                with load_client(target.proc.url, self.client_cores, self.logdir) as client:
                    login = client.call({"cmd": "login", "sessions": level, "prefix": self.prefix(), "concurrency": 50},
                                        timeout=timeout)
                    time.sleep(0.5)
                    rss0 = rss_mb(target.proc.pid)
                    connect = measure(target, client, {"cmd": "connect", "per_session": 1, "concurrency": 200},
                                      timeout=timeout)
                    time.sleep(0.5)
                    rss1 = rss_mb(target.proc.pid)
                    client.call({"cmd": "events", "event": "whoami", "per_socket": 1}, timeout=timeout)
                    active = min(level, self.sizes.clients)
                    few = measure(target, client, {"cmd": "events", "event": "incr", "sockets": active,
                                                   "per_socket": self.sizes.events}, timeout=timeout)
                    answer = measure(target, client, {"cmd": "events", "event": "incr", "per_socket": per_socket},
                                     timeout=timeout)
            except RuntimeError as exc:
                self.notes.append(f"scale x{level}: {exc}")
                self.log(f"  scale x{level}: {exc}")
                target.proc.stop()
                continue
            target.proc.stop()
            connected = connect.get("connected") or 0
            record = event_record(target, "incr", 0, answer)
            record.update({
                "section": "scale", "connections": level, "store": store, "logins": login.get("sessions"),
                "login_per_s": (login.get("sessions") or 0) / login["elapsed_s"] if login.get("elapsed_s") else None,
                "connected": connected, "connect_errors": connect.get("errors"),
                "connect_per_s": connected / connect["elapsed_s"] if connect.get("elapsed_s") else None,
                "connect_p50_us": (connect.get("latency") or {}).get("p50_us"),
                "connect_p99_us": (connect.get("latency") or {}).get("p99_us"),
                "connect_server_cpu_us": connect["server_cpu_s"] / connected * 1e6 if connected else None,
                "rss_before_mb": rss0, "rss_after_mb": rss1,
                "rss_kb_per_connection": (rss1 - rss0) * 1024 / connected if connected else None,
                "client_rss_mb": answer.get("client_rss_mb"), "events_per_socket": per_socket,
                "active": {k: v for k, v in event_record(target, "incr", 0, few).items()
                           if k not in ("section", "round", "target", "workload")} | {"sockets": active},
            })
            record["ok"] = record["ok"] and connected == level
            self.records.append(record)
            self.log(f"  scale x{level}: connect {record['connect_per_s'] or 0:.0f}/s, "
                     f"{record['rss_kb_per_connection'] or 0:.1f} KB/conn, incr {record['events_per_s'] or 0:.0f}/s "
                     f"p99 {(record['p99_us'] or 0) / 1000:.1f} ms")


# -- summaries ----------------------------------------------------------------
#: packages whose functions the profile tables show by inclusive share (the rest is the stack under them)
FOCUS = ("wsgisession", "examples", "beaker", "json", "orjson", "redis", "flask", "flask_session",
         "flask_socketio", "cachelib", "werkzeug", "itsdangerous")


def collapsed_summary(path: Path, top: int = 20) -> dict[str, Any]:
    """py-spy's raw (collapsed) stacks -> self share by package, top functions by self and inclusive share."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    packages: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = []
        for frame in stack.split(";"):
            name, _, where = frame.partition(" (")
            frames.append((name, where.split(":")[0].rstrip(")")))
        for name, where in set(frames):
            if where.split("/")[0] in FOCUS:
                key = f"{name} ({where})"
                inclusive[key] = inclusive.get(key, 0) + count
        name, where = frames[-1]
        own[f"{name} ({where})"] = own.get(f"{name} ({where})", 0) + count
        package = where.split("/")[0] if "/" in where else where or "?"
        packages[package] = packages.get(package, 0) + count

    def share(counts: dict[str, int], n: int = top) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:n]
        return [(k, round(v / total, 4)) for k, v in ranked] if total else []

    return {"samples": total, "self_by_package": share(packages, 12), "inclusive": share(inclusive),
            "self": share(own)}


def median(values: list[Any]) -> float | None:
    clean = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(clean) if clean else None


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    events: dict[str, dict[str, dict[str, Any]]] = {}
    fields = ("events_per_s", "p50_us", "p99_us", "server_cpu_us_per_event", "store_cpu_us_per_event",
              "server_cpu_util", "client_cpu_util", "server_core_others", "store_commands_per_event",
              "store_reads_per_event")
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r["section"] == "events" and r.get("workload"):
            by_key.setdefault((r["target"], r["workload"]), []).append(r)
    for (target, workload), rows in by_key.items():
        good = [r for r in rows if r["ok"]]
        entry = {f: median([r.get(f) for r in good]) for f in fields}
        entry["rounds"] = len(good)
        entry["failed_rounds"] = len(rows) - len(good)
        events.setdefault(target, {})[workload] = entry

    def per_round(target: str, workload: str, metric: str) -> dict[int, float]:
        return {r["round"]: r[metric] for r in by_key.get((target, workload), []) if r["ok"] and r.get(metric)}

    def ratio(a: tuple[str, str], b: tuple[str, str], metric: str, invert: bool = False) -> float | None:
        """Median over rounds of a/b, each pair measured in the same round."""
        x, y = per_round(*a, metric), per_round(*b, metric)
        pairs = [(y[k] / x[k]) if invert else (x[k] / y[k]) for k in x if k in y and x[k] and y[k]]
        return median(pairs)

    ratios: dict[str, dict[str, float | None]] = {}
    for target, workloads in events.items():
        if "echo" not in workloads:
            continue
        row: dict[str, float | None] = {}
        for w in ("whoami", "incr"):
            if w in workloads:
                row[f"{w}/echo cpu"] = ratio((target, w), (target, "echo"), "server_cpu_us_per_event")
                row[f"{w}/echo time"] = ratio((target, w), (target, "echo"), "events_per_s", invert=True)
        if "incr" in workloads and "bare-socketio" in events:
            row["incr/bare echo cpu"] = ratio((target, "incr"), ("bare-socketio", "echo"), "server_cpu_us_per_event")
        ratios[target] = row
    for store in ("memory", "sqlite", "file", "redis"):
        nolock, locked = f"wsgisession/{store}/nolock", f"wsgisession/{store}"
        if nolock in events and locked in events:
            ratios.setdefault(locked, {})["incr lock cost cpu"] = ratio(
                (locked, "incr"), (nolock, "incr"), "server_cpu_us_per_event")

    versus: dict[str, dict[str, float | None]] = {}
    for target in events:
        stack, _, store = target.partition("/")
        if stack != "wsgisession" or "/" in store:
            continue
        for peer in events:
            peer_stack, _, peer_store = peer.partition("/")
            if peer_stack in ("flask", "beaker", "node") and (peer_store == store or
                                                               (peer_stack == "node" and store == "memory"
                                                                and peer_store == "memory")):
                versus[f"{target} vs {peer}"] = {
                    w: ratio((target, w), (peer, w), "events_per_s") for w in WORKLOADS
                    if w in events[target] and w in events[peer]
                }

    mixed: dict[str, dict[str, Any]] = {}
    mfields = ("ops_per_s", "http_p50_us", "http_p99_us", "socket_p50_us", "socket_p99_us", "server_cpu_us_per_op",
               "store_cpu_us_per_op", "client_cpu_util", "server_core_others", "store_commands_per_op")
    mrows: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["section"] == "mixed" and "ops" in r:
            mrows.setdefault(r["target"], []).append(r)
    for target, rows in mrows.items():
        entry = {f: median([r.get(f) for r in rows]) for f in mfields}
        entry.update({
            "rounds": len(rows), "acked": sum(r.get("acked") or 0 for r in rows),
            "lost": sum(r.get("lost") or 0 for r in rows), "extra": sum(r.get("extra") or 0 for r in rows),
            "errors": sum(sum((r.get("http_errors") or {}).values()) + (r.get("bad_acks") or 0)
                          + (r.get("expected_ops", 0) - (r.get("ops") or 0)) for r in rows),
            "locking": rows[0].get("locking"),
        })
        mixed[target] = entry
    for store in ("memory", "sqlite", "file", "redis"):
        locked, nolock = f"wsgisession/{store}", f"wsgisession/{store}/nolock"
        if locked in mrows and nolock in mrows:
            x = {r["round"]: r for r in mrows[locked]}
            y = {r["round"]: r for r in mrows[nolock]}
            rounds = [k for k in x if k in y]
            mixed[locked]["lock_cost_time"] = median(
                [y[k]["ops_per_s"] / x[k]["ops_per_s"] for k in rounds
                 if x[k].get("ops_per_s") and y[k].get("ops_per_s")])
            mixed[locked]["lock_cost_cpu"] = median(
                [x[k]["server_cpu_us_per_op"] / y[k]["server_cpu_us_per_op"] for k in rounds
                 if x[k].get("server_cpu_us_per_op") and y[k].get("server_cpu_us_per_op")])

    keepalive: dict[str, dict[str, Any]] = {}
    krows: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["section"] == "keepalive" and r.get("ok"):
            krows.setdefault(r["target"], []).append(r)
    for target, rows in krows.items():
        keepalive[target] = {f: median([r[f] for r in rows]) for f in ("p50_us", "p90_us", "p99_us", "max_us")}
        keepalive[target]["stalls_over_30ms"] = sum(r["stalls_over_30ms"] for r in rows)
        keepalive[target]["requests"] = sum(r["requests"] for r in rows)

    scale = [r for r in records if r["section"] == "scale"]
    return {"events": events, "ratios": ratios, "versus": versus, "mixed": mixed, "keepalive": keepalive,
            "scale": scale, "http": summarize_http(records)}


#: ours -> the peers on the same kind of store (the embedded default of each, memory, Redis)
HTTP_PEERS = {
    "memory": ("beaker/memory", "flask/memory"), "sqlite": ("beaker/file", "flask/file"),
    "file": ("beaker/file", "flask/file"), "redis": ("beaker/redis", "flask/redis"),
}


def summarize_http(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per server and path, and ratios taken within each round (against the bare app, ours against peers)."""
    out: dict[str, Any] = {}
    for section, metric, fields in (
        ("http", "server_cpu_us_per_request", ("requests_per_s", "server_cpu_us_per_request", "p50_us", "p99_us",
                                                "server_cpu_util")),
        ("http_inprocess", "cpu_us_per_request", ("cpu_us_per_request", "wall_us_per_request")),
    ):
        rows: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        for r in records:
            if r["section"] == section and r.get("ok") and r.get("path"):
                rows.setdefault((r["target"].removeprefix("http:"), r["path"]), {})[r["round"]] = r
        table_: dict[str, dict[str, Any]] = {}
        for (name, path), by_round in rows.items():
            entry = {f: median([r.get(f) for r in by_round.values()]) for f in fields}
            entry["rounds"] = len(by_round)
            bare = rows.get(("bare", path), {})
            entry["x_bare"] = median([r[metric] / bare[k][metric] for k, r in by_round.items()
                                      if k in bare and bare[k].get(metric) and r.get(metric)])
            stack, _, store = name.partition("/")
            if stack == "wsgisession":
                for peer in HTTP_PEERS.get(store, ()):
                    theirs = rows.get((peer, path), {})
                    entry[f"vs {peer}"] = median([theirs[k][metric] / r[metric] for k, r in by_round.items()
                                                  if k in theirs and theirs[k].get(metric) and r.get(metric)])
            table_.setdefault(name, {})[path] = entry
        out[section] = table_
    return out


# -- tables -------------------------------------------------------------------
def fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "ms":
        return f"{value / 1000:.2f}"
    if kind == "us":
        return f"{value:.0f}"
    if kind == "pct":
        return f"{value * 100:.0f}%"
    if kind == "x":
        return f"{value:.2f}x"
    if kind == "n":
        return f"{value:.1f}"
    if kind == "rate":
        return f"{value:,.0f}"
    return str(value)


TABLE_STYLE = {"rst": False}


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table (or an RST simple table with ``--render --rst``); empty without rows."""
    if not rows:
        return ""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    if TABLE_STYLE["rst"]:
        rule = line(["=" * w for w in widths])
        rows = [[c.replace("*", "\\*") for c in r] for r in rows]
        return "\n".join([f"\n{title}\n", rule, line(header), rule, *(line(r) for r in rows), rule])
    out = [f"\n{title}", line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def report(summary: dict[str, Any], sizes: Sizes, notes: list[str]) -> str:
    parts = []
    rows = []
    for target, workloads in summary["events"].items():
        for w in WORKLOADS:
            e = workloads.get(w)
            if e is None:
                continue
            rows.append([target, w, fmt(e["events_per_s"], "rate"), fmt(e["p50_us"], "ms"), fmt(e["p99_us"], "ms"),
                         fmt(e["server_cpu_us_per_event"], "us"), fmt(e["store_cpu_us_per_event"], "us"),
                         fmt(e["store_commands_per_event"], "n"), fmt(e.get("store_reads_per_event"), "n"),
                         fmt(e["server_cpu_util"], "pct"), fmt(e["client_cpu_util"], "pct"),
                         fmt(e["server_core_others"], "pct"),
                         f"{e['rounds']}" + (f" ({e['failed_rounds']} failed)" if e["failed_rounds"] else "")])
    parts.append(table(
        f"1/3. Events over websocket, acked: {sizes.clients} clients x {sizes.events} events, "
        f"median of {sizes.rounds} rounds",
        ["target", "event", "events/s", "p50 ms", "p99 ms", "srv us/ev", "store us/ev", "store cmds/ev",
         "store reads/ev", "srv CPU", "client CPU", "others", "rounds"], rows))
    rows = []
    for target, r in summary["ratios"].items():
        rows.append([target, fmt(r.get("whoami/echo cpu"), "x"), fmt(r.get("incr/echo cpu"), "x"),
                     fmt(r.get("whoami/echo time"), "x"), fmt(r.get("incr/echo time"), "x"),
                     fmt(r.get("incr/bare echo cpu"), "x"), fmt(r.get("incr lock cost cpu"), "x")])
    parts.append(table("Ratios within the run (median of per-round ratios; cpu = server CPU per event, "
                       "time = 1 / events/s)",
                       ["target", "whoami/echo cpu", "incr/echo cpu", "whoami/echo time", "incr/echo time",
                        "incr/bare echo cpu", "incr locked/nolock cpu"], rows))
    rows = [[pair, *(fmt(v.get(w), "x") for w in WORKLOADS)] for pair, v in summary["versus"].items()]
    parts.append(table("Throughput vs peers (events/s ours / events/s peer, same round)",
                       ["pair", *WORKLOADS], rows))
    rows = []
    for target, m in summary["mixed"].items():
        rows.append([target, {True: "on", False: "OFF"}.get(m["locking"], "none"), fmt(m["ops_per_s"], "rate"),
                     fmt(m["http_p50_us"], "ms"), fmt(m["http_p99_us"], "ms"), fmt(m["socket_p50_us"], "ms"),
                     fmt(m["socket_p99_us"], "ms"), fmt(m["server_cpu_us_per_op"], "us"), str(m["acked"]),
                     str(m["lost"]), str(m["errors"]), fmt(m.get("lock_cost_time"), "x"),
                     fmt(m.get("lock_cost_cpu"), "x")])
    parts.append(table(
        f"2. Mixed HTTP POST /incr + socket incr per session: {sizes.mixed_sessions} sessions x "
        f"({sizes.mixed_http} HTTP + {sizes.mixed_sockets} socket loops) x {sizes.mixed_ops} ops; "
        "acked/lost summed over rounds",
        ["target", "locks", "ops/s", "http p50", "http p99", "sock p50", "sock p99", "srv us/op", "acked", "lost",
         "errors", "lock cost time", "lock cost cpu"], rows))
    rows = [[t, fmt(k["p50_us"], "ms"), fmt(k["p90_us"], "ms"), fmt(k["p99_us"], "ms"), fmt(k["max_us"], "ms"),
             f"{k['stalls_over_30ms']}/{k['requests']}"] for t, k in summary["keepalive"].items()]
    parts.append(table(f"4. Keep-alive HTTP GET /n, {sizes.keepalive} sequential requests on one connection "
                       "(ms, median of rounds)", ["server", "p50", "p90", "p99", "max", "> 30 ms"], rows))
    if summary["scale"]:
        rows = []
        for s in summary["scale"]:
            a = s.get("active") or {}
            rows.append([str(s["connections"]), str(s.get("connected")), fmt(s.get("connect_per_s"), "rate"),
                         fmt(s.get("connect_p99_us"), "ms"), fmt(s.get("connect_server_cpu_us"), "us"),
                         fmt(s.get("rss_kb_per_connection"), "us"),
                         fmt(a.get("events_per_s"), "rate"), fmt(a.get("p99_us"), "ms"),
                         fmt(a.get("server_cpu_us_per_event"), "us"),
                         fmt(s.get("events_per_s"), "rate"), fmt(s.get("p50_us"), "ms"), fmt(s.get("p99_us"), "ms"),
                         fmt(s.get("server_cpu_us_per_event"), "us"), fmt(s.get("client_cpu_util"), "pct")])
        parts.append(table(
            f"5. Scale: one `wsgisession serve`, N sockets each with its own session; incr from "
            f"{sizes.clients} of them ('{sizes.clients} active'), then from all at once ('all')",
            ["N", "connected", "connect/s", "connect p99 ms", "srv us/connect", "KB/conn",
             "active incr/s", "active p99 ms", "active us/ev", "all incr/s", "all p50 ms", "all p99 ms",
             "all us/ev", "client CPU"], rows))
    parts.append(report_http(summary.get("http") or {}, sizes))
    for target, workloads in (summary.get("profiles") or {}).items():
        for workload, prof in workloads.items():
            title = f"Profile {target} {workload} ({prof['samples']} py-spy samples; {prof['file']})"
            rows = [[name, fmt(share, "pct")] for name, share in prof["self_by_package"]]
            parts.append(table(f"{title}: self time by package", ["package", "share"], rows))
            rows = [[name[:100], fmt(share, "pct")] for name, share in prof["inclusive"][:15]]
            parts.append(table(f"{title}: session-side functions, inclusive", ["function", "share"], rows))
            rows = [[name[:100], fmt(share, "pct")] for name, share in prof["self"][:12]]
            parts.append(table(f"{title}: top functions by self time", ["function", "share"], rows))
    if notes:
        parts.append("\nNotes:\n" + "\n".join(f"- {n}" for n in notes))
    return "\n".join(p for p in parts if p) + "\n"


def report_http(http: dict[str, Any], sizes: Sizes) -> str:
    parts = []
    served, inproc = http.get("http") or {}, http.get("http_inprocess") or {}
    names = list(dict.fromkeys([*served, *inproc]))
    rows = []
    for name in names:
        for path in HTTP_PATHS:
            s, i = (served.get(name) or {}).get(path) or {}, (inproc.get(name) or {}).get(path) or {}
            if not s and not i:
                continue
            rows.append([name, path, fmt(s.get("requests_per_s"), "rate"), fmt(s.get("server_cpu_us_per_request"), "us"),
                         fmt(s.get("x_bare"), "x"), fmt(s.get("p50_us"), "ms"), fmt(s.get("p99_us"), "ms"),
                         fmt(s.get("server_cpu_util"), "pct"), fmt(i.get("cpu_us_per_request"), "n"),
                         fmt(i.get("x_bare"), "x")])
    parts.append(table(
        f"6. HTTP path: GET /read (reads the session) and /write (writes it); served: {sizes.http_connections} "
        f"keep-alive connections x {sizes.http_requests} requests; in process: {sizes.http_inprocess} WSGI calls; "
        "median of rounds, x bare = CPU over the bare app's in the same round",
        ["app", "path", "req/s", "srv us/req", "x bare", "p50 ms", "p99 ms", "srv CPU", "in-proc us/req",
         "in-proc x bare"], rows))
    rows = []
    for name in names:
        stack, _, store = name.partition("/")
        if stack != "wsgisession":
            continue
        for peer in HTTP_PEERS.get(store, ()):
            cells = []
            for section in (served, inproc):
                for path in HTTP_PATHS:
                    cells.append(fmt(((section.get(name) or {}).get(path) or {}).get(f"vs {peer}"), "x"))
            if any(c != "-" for c in cells):
                rows.append([f"{name} vs {peer}", *cells])
    parts.append(table("HTTP path: the peer's CPU per request over ours (same round; > 1: ours is cheaper)",
                       ["pair", "served read", "served write", "in-proc read", "in-proc write"], rows))
    return "\n".join(p for p in parts if p)


# -- the machine --------------------------------------------------------------
def machine(args: argparse.Namespace, server_cores: set[int] | None, client_cores: set[int] | None) -> dict[str, Any]:
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    def node_version(directory: Path, name: str) -> str | None:
        try:
            return str(json.loads((directory / "node_modules" / name / "package.json").read_text())["version"])
        except (OSError, ValueError, KeyError):
            return None

    def run(argv: list[str], cwd: Path = ROOT) -> str | None:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=cwd).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None

    model = None
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    dists = ["wsgisession", "gevent", "gevent-websocket", "greenlet", "python-socketio", "python-engineio",
             "simple-websocket", "Beaker", "Werkzeug", "PasteDeploy", "gunicorn", "redis", "orjson", "Flask",
             "Flask-SocketIO", "Flask-Session", "cachelib", "msgspec", "py-spy"]
    status = run(["git", "status", "--porcelain", "--", "wsgisession", "examples"])
    return {
        "host": socket.gethostname(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "cpus_usable": sorted(os.sched_getaffinity(0)),
        "server_cores": sorted(server_cores) if server_cores else None,
        "client_cores": sorted(client_cores) if client_cores else None,
        "memory_mb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1048576,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": {d: version(d) for d in dists},
        "node": run(["node", "--version"]),
        "node_packages": {
            **{n: node_version(NODE_PEER, n) for n in ("express", "express-session", "socket.io", "connect-redis",
                                                       "redis")},
            "socket.io-client (load client)": node_version(ROOT, "socket.io-client"),
        },
        "redis_server": run(["redis-server", "--version"]),
        "git_commit": run(["git", "rev-parse", "HEAD"]),
        "git_dirty_library": bool(status),
        "loadavg_start": os.getloadavg(),
    }


# -- main -----------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 2)")
    parser.add_argument("--clients", type=int, help="events: concurrent sockets (default 50; quick 20)")
    parser.add_argument("--events", type=int, help="events: acked events per socket (default 150; quick 50)")
    parser.add_argument("--warmup", type=int, help="events: untimed events per socket and workload per round")
    parser.add_argument("--mixed-sessions", type=int, help="mixed: sessions (default 10; quick 4)")
    parser.add_argument("--mixed-http", type=int, help="mixed: concurrent HTTP loops per session (default 4)")
    parser.add_argument("--mixed-sockets", type=int, help="mixed: concurrent sockets per session (default 4)")
    parser.add_argument("--mixed-ops", type=int, help="mixed: operations per loop (default 25; quick 15)")
    parser.add_argument("--keepalive-requests", type=int, help="keepalive: requests per server per round")
    parser.add_argument("--http-requests", type=int, help="http: requests per path per server per round (3000)")
    parser.add_argument("--http-inprocess", type=int, help="http: WSGI calls per path per app per round (2000)")
    parser.add_argument("--sections", default="events,mixed,keepalive,http",
                        help="comma list of events, mixed, keepalive, http (default all four; --scale adds scale)")
    parser.add_argument("--targets", default="*",
                        help="comma list of target globs, e.g. 'wsgisession/*,flask/*' (default all)")
    parser.add_argument("--profile", metavar="GLOBS",
                        help="after the rounds, py-spy these targets (e.g. 'wsgisession/memory') under echo and "
                             "incr; raw stacks go to benchmarks/results/profiles/")
    parser.add_argument("--scale", action="store_true", help="also run the scale section (100, 1000, 10000 sockets)")
    parser.add_argument("--scale-levels", help="comma list of connection counts (default 100,1000,10000)")
    parser.add_argument("--scale-store", default="file", choices=["memory", "sqlite", "file", "redis"])
    parser.add_argument("--file-dir", help="where the file stores keep sessions (default benchmarks/.tmp/<run>/; "
                        "e.g. /dev/shm to take the disk's rename cost out)")
    parser.add_argument("--redis-core", choices=("server", "client"), default="server",
                        help="the core redis-server runs on: the servers' (default: it competes with them, as on a "
                             "one-host deploy) or the load client's (as with Redis on its own core or host)")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis store even if redis-server exists")
    parser.add_argument("--no-stock", action="store_true", help="keepalive: skip the stock (Nagle) servers")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and client to separate cores")
    parser.add_argument("--output", help="the JSON file (default benchmarks/results/<date>-<host>[-quick].json)")
    parser.add_argument("--keep", action="store_true", help="keep benchmarks/.tmp/<run>/ (logs, session files)")
    parser.add_argument("--render", metavar="JSON", help="run nothing: print the tables of a saved result")
    parser.add_argument("--rst", action="store_true", help="with --render: reStructuredText tables (README.rst)")
    return parser.parse_args(argv)


def sizes_of(args: argparse.Namespace) -> Sizes:
    sizes = Sizes.quick() if args.quick else Sizes()
    for name, attr in (("rounds", "rounds"), ("clients", "clients"), ("events", "events"), ("warmup", "warmup"),
                       ("mixed_sessions", "mixed_sessions"), ("mixed_ops", "mixed_ops"),
                       ("mixed_http", "mixed_http"), ("mixed_sockets", "mixed_sockets"),
                       ("keepalive_requests", "keepalive"), ("http_requests", "http_requests"),
                       ("http_inprocess", "http_inprocess")):
        value = getattr(args, name)
        if value is not None:
            setattr(sizes, attr, value)
    if args.scale_levels:
        sizes.scale_levels = tuple(int(x) for x in args.scale_levels.split(","))
    return sizes


def preflight() -> dict[str, bool]:
    if shutil.which("node") is None:
        sys.exit("run.py: node is needed for the load client (apt-get install nodejs npm)")
    if not (ROOT / "node_modules" / "socket.io-client").is_dir():
        sys.exit("run.py: node_modules/socket.io-client is missing: run `npm install` at the repository root "
                 "(make setup does)")
    have = {"flask": True, "node_peer": (NODE_PEER / "node_modules" / "socket.io").is_dir()}
    try:
        import flask_session  # noqa: F401
        import flask_socketio  # noqa: F401
    except ImportError:
        have["flask"] = False
    return have


def fs_type(path: Path) -> str | None:
    try:
        return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def output_path(args: argparse.Namespace, info: dict[str, Any]) -> Path:
    if args.output:
        return Path(args.output)
    stem = f"{info['date'][:10]}-{info['host']}" + ("-quick" if args.quick else "")
    path = RESULTS / f"{stem}.json"
    n = 2
    while path.exists():
        path = RESULTS / f"{stem}-{n}.json"
        n += 1
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        TABLE_STYLE["rst"] = args.rst
        saved_sizes = Sizes(**{**saved["sizes"], "scale_levels": tuple(saved["sizes"]["scale_levels"])})
        print(report(saved["summary"], saved_sizes, saved.get("notes", [])))
        machine_info = saved["machine"]
        print(f"{machine_info['date']}, {machine_info['cpu_model']}, {machine_info['cpus']} cores, Python "
              f"{machine_info['python']}, node {machine_info['node']}: {' '.join(machine_info['command'][1:])}")
        return 0
    sizes = sizes_of(args)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    if args.scale:
        sections.add("scale")
    globs = [g.strip() for g in args.targets.split(",") if g.strip()]
    have = preflight()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 sockets need as many files

    run_id = time.strftime("%Y%m%d-%H%M%S")
    workdir = HERE / ".tmp" / run_id
    workdir.mkdir(parents=True)
    bench = Run(args, sizes, workdir)
    info = machine(args, bench.server_cores, bench.client_cores)
    if bench.client_cores:
        os.sched_setaffinity(0, bench.client_cores)  # this script (keepalive's client) with the load client
    info["nofile_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)
    started = time.monotonic()
    try:
        with bench.stack:
            bench.start_redis()
            file_root = Path(args.file_dir).resolve() / run_id if args.file_dir else workdir
            file_root.mkdir(parents=True, exist_ok=True)
            if args.file_dir:
                bench.stack.callback(shutil.rmtree, file_root, True)
            info["file_store_dir"] = str(file_root)
            info["file_store_fs"] = fs_type(file_root)
            targets, skipped = build_targets(workdir, bench.redis_url, have, file_root)
            bench.notes += skipped
            targets = [t for t in targets if any(fnmatch.fnmatch(t.name, g) for g in globs)]
            if sections & {"events", "mixed"} or args.profile:
                bench.log(f"starting {len(targets)} servers")
                targets = [t for t in targets if bench.start_target(t)]
            keepalive = bench.keepalive_servers(workdir) if "keepalive" in sections else []
            keepalive = [t for t in keepalive if bench.start_target(t)]
            http = [t for t in http_targets(workdir, bench.redis_url, have)
                    if any(fnmatch.fnmatch(t.name, g) for g in globs)] if "http" in sections else []
            http = [t for t in http if bench.start_target(t)]
            for rnd in range(sizes.rounds if sections & {"events", "mixed", "keepalive", "http"} else 0):
                bench.log(f"round {rnd + 1}/{sizes.rounds}")
                if "events" in sections:
                    for target in rotate([t for t in targets if t.workloads], rnd):
                        if bench.usable(target):
                            bench.events_round(target, rnd)
                if "mixed" in sections:
                    for target in rotate([t for t in targets if t.mixed], rnd):
                        if bench.usable(target):
                            bench.mixed_round(target, rnd)
                if "keepalive" in sections:
                    for target in rotate(keepalive, rnd):
                        if bench.usable(target):
                            bench.keepalive_round(target, rnd)
                if "http" in sections:
                    for target in rotate(http, rnd):
                        if bench.usable(target):
                            bench.http_round(target, rnd)
                    for target in rotate(http, rnd):
                        bench.http_inprocess_round(target, rnd)
            if args.profile:
                bench.log("profiles")
                wanted = [g.strip() for g in args.profile.split(",") if g.strip()]
                for target in targets:
                    if target.stack in ("wsgisession", "bare", "beaker", "flask") and bench.usable(target) and \
                            any(fnmatch.fnmatch(target.name, g) for g in wanted):
                        bench.profiles[target.name] = bench.profile(target, run_id)
            for target in [*targets, *keepalive, *http]:
                if target.proc is not None and target.proc.alive():
                    target.proc.stop()
            if "scale" in sections:
                bench.log("scale")
                bench.scale(workdir)
    except KeyboardInterrupt:
        bench.notes.append("interrupted")
    finally:
        info["duration_s"] = round(time.monotonic() - started, 1)
        info["loadavg_end"] = os.getloadavg()
        summary = summarize(bench.records)
        summary["profiles"] = bench.profiles
        result = {"machine": info, "sizes": sizes.__dict__, "sections": sorted(sections), "notes": bench.notes,
                  "summary": summary, "records": bench.records}
        path = output_path(args, info)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(report(summary, sizes, bench.notes))
        print(f"raw results: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
              f"({info['duration_s']} s; load average {info['loadavg_start'][0]:.2f} -> {info['loadavg_end'][0]:.2f})")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
