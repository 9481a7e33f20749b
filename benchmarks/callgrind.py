#!/usr/bin/env python3
"""Server instructions per websocket event, end to end, counted by valgrind's callgrind.

    .venv/bin/python benchmarks/callgrind.py                       # ours (memory, sqlite, file, redis), bare python-socketio, Flask
    .venv/bin/python benchmarks/callgrind.py --targets 'wsgisession/memory,bare-socketio' --events 40
    .venv/bin/python benchmarks/callgrind.py --tree before=../wt-base --tree after=. --targets 'wsgisession/*'

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
same load. Needs valgrind (``apt-get install valgrind``); the ``wsgisession/redis``
target needs ``redis-server``, started privately on a free port for the run.

``--tree LABEL=DIR`` (repeatable) runs each of our targets once per source tree,
as ``LABEL:wsgisession/memory`` and so on, to compare two versions of the code in
one run: the server of a tree imports ``wsgisession``, the counter example
(DIR/examples, as ``examples`` or as the older ``wsgisession_examples``) and
``tests`` from DIR (``PYTHONPATH``, ahead of the editable install; a probe with the same interpreter, environment and INI checks every
module it loads is under DIR before the server starts), with this virtualenv's
interpreter and packages for every tree. With two trees or more, a table gives
each later tree's instructions per event over the first's, per target and
workload. The peers (``bare-socketio``, ``flask/memory``) run once, from this
checkout. Without ``--tree`` the servers run from this checkout, unlabelled.

Repeatability: the server runs alone on one core (the client, redis-server and
this script on another; ``--no-pin``), with a fixed PYTHONHASHSEED
(``--hash-seed``), and our servers' clock-driven work
(touch saves, the expiry sweep, Engine.IO pings, lock renewal; see STEADY) is
moved past the end of the run (``--clock-work`` keeps it): the same code then
counts the same to a few instructions per event (0.01%) on the memory and
file stores. The Redis store pipelines the commands of concurrent events, as
many as happen to wait at that moment, so its rows still move by up to ~1%
from run to run, mostly upwards (fewer commands per pipeline): ``--repeat N``
runs every server N times, round by round (seed N in round N), and keeps the
lowest count (``--stat median``: the median). Another seed moves a row by up
to ~0.3%, the same way for identical code: one seed cannot tell changes that
small; several (``--repeat``) can.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import fnmatch
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import RESULTS, ROOT, Target, load_client, machine, ours, preflight, python_peer, start  # noqa: E402

from tests.servers import child_env, free_port  # noqa: E402

_R = TypeVar("_R")

WORKLOADS = ("echo", "whoami", "incr")
STORES = ("memory", "sqlite", "file", "redis")
#: the top-level packages a tree provides: each must load from the tree's DIR
TREE_PACKAGES = ("wsgisession", "wsgisession_examples", "tests", "examples")

#: work done on a clock rather than per event, moved out of the run: a session's touch save once
#: per touch_interval (60 s) and the expiry sweep (30 s) read or write the store, Engine.IO pings
#: every socket (25 s) and checks ping timeouts (every 20 s / sockets), a held Redis lock is
#: renewed every lock_ttl / 3 (lock_timeout set too: longer than lock_ttl, and the same in every tree
#: whatever its default). Under valgrind a target runs about a minute, so whether such work falls
#: inside a counted window is chance: the touch saves alone moved Redis ``incr`` by 1%.
STEADY = {"wsgisession.touch_interval": "86400", "wsgisession.sweep_interval": "86400",
          "wsgisession.lock_ttl": "30", "wsgisession.lock_timeout": "60",
          "socketio.ping_interval": "3600", "socketio.ping_timeout": "3600"}

#: run by the server's own interpreter, environment and cwd: loads the app from the target's INI, as
#: ``wsgisession serve`` does, and prints where each of the tree's modules came from
PROBE = """\
import json, sys
sys.path[0] = sys.argv[1]  # a console script's own directory comes first, not the cwd
from gevent import monkey
monkey.patch_all()
from paste.deploy import loadapp
import wsgisession.serve
loadapp("config:" + sys.argv[2])
print(json.dumps({name: getattr(module, "__file__", None) for name, module in sorted(sys.modules.items())
                  if name.partition(".")[0] in sys.argv[3:]}))
"""


@dataclass(frozen=True)
class Tree:
    """A source tree whose wsgisession, examples/ and tests/ our servers import."""

    label: str | None  # None: this checkout, launched as run.py launches it
    root: Path
    index: int = 0

    def name(self, target: str) -> str:
        return target if self.label is None else f"{self.label}:{target}"

    def workdir(self, directory: Path) -> Path:
        """Where this tree's INI files, file stores and ``sys.path`` shim go (same path length for every tree)."""
        return directory if self.label is None else directory / f"tree{self.index:02d}"

    def shim(self, directory: Path) -> Path:
        return self.workdir(directory) / "path"

    def prepare(self, directory: Path) -> None:
        """The path shim: ``wsgisession_examples`` is DIR/examples (an older setup.py's package_dir), so that a
        tree's INI handlers or imports naming it do not fall through to the editable install's mapping."""
        if self.label is None:
            return
        shim = self.shim(directory)
        shim.mkdir(parents=True, exist_ok=True)
        if not (self.root / "wsgisession_examples").exists():
            (shim / "wsgisession_examples").symlink_to(self.root / "examples", target_is_directory=True)

    def prefix(self, directory: Path) -> list[str]:
        """Put in front of the server's argv (before valgrind): the tree's ``PYTHONPATH``, nothing else."""
        if self.label is None:
            return []
        return ["env", f"PYTHONPATH={self.root}{os.pathsep}{self.shim(directory)}"]


@dataclass
class Case:
    """One server to measure: a target, and for ours the tree it runs."""

    target: Target
    tree: Tree | None = None  # None: a peer (runs once, from this checkout)
    base: str = ""  # the target's name without the tree's label

    @property
    def name(self) -> str:
        return self.target.name


def tree_arg(value: str) -> Tree:
    label, sep, directory = value.partition("=")
    label = label.strip()
    if not sep or not label or not re.fullmatch(r"[A-Za-z0-9_.-]+", label):
        raise argparse.ArgumentTypeError(f"{value!r}: expected LABEL=DIR, LABEL of letters, digits, '_', '.', '-'")
    root = Path(directory).expanduser().resolve()
    for needed in ("wsgisession/__init__.py", "examples/counter"):
        if not (root / needed).exists():
            raise argparse.ArgumentTypeError(f"{value!r}: {root / needed} does not exist")
    return Tree(label, root)


def selected(name: str, base: str, globs: list[str]) -> bool:
    """``--targets`` globs match the full name (``after:wsgisession/file``) or the name without the label."""
    return any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(base, g) for g in globs)


def steady(target: Target) -> None:
    """Add STEADY to the INI of one of our targets (its [app:main] section is the file's last)."""
    argv = target.launch(0)
    ini = Path(argv[argv.index("serve") + 1])
    with open(ini, "a") as out:
        out.writelines(f"{key} = {value}\n" for key, value in STEADY.items())


def targets_for(directory: Path, have: dict[str, bool], trees: list[Tree], globs: list[str],
                redis_url: str | None, *, clock_work: bool = False) -> list[Case]:
    """The servers to measure: ours on each store once per tree (store by store), then the peers."""
    cases: list[Case] = []
    for store in STORES:
        if store == "redis" and redis_url is None:
            continue
        for tree in trees:
            base = f"wsgisession/{store}"
            if not selected(tree.name(base), base, globs):
                continue
            url = None if redis_url is None else re.sub(r"/\d+$", f"/{tree.index}", redis_url)  # a database each
            target = ours(store, tree.workdir(directory), url)
            if not clock_work:
                steady(target)
            target.name = tree.name(base)
            if tree.label is not None:
                target.cwd = tree.root
            cases.append(Case(target, tree, base))
    peers = [Target("bare-socketio", "bare", "none", workloads=("echo",), launch=python_peer("bare_socketio.py"))]
    if have["flask"]:
        peers.append(Target("flask/memory", "flask", "memory",
                            launch=python_peer("flask_socketio_peer.py", "--type", "memory")))
    cases += [Case(t, None, t.name) for t in peers if selected(t.name, t.name, globs)]
    return cases


def interpreter(argv: list[str]) -> str:
    """The Python that runs ``argv``: the shebang's of a console script, or argv[0] itself."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        with open(argv[0], "rb") as script:
            first = script.readline().decode()
        if first.startswith("#!"):
            return first[2:].strip().split()[0]
    return argv[0]


def app_module(ini: Path) -> str | None:
    """The module of the INI's app factory: ``use = call:examples.counter:app_factory`` or the old entry point."""
    found = re.search(r"^use\s*=\s*(\S+)", ini.read_text(), re.MULTILINE)
    use = found.group(1) if found else ""
    if use.startswith("call:"):
        return use[len("call:"):].partition(":")[0]
    return "wsgisession_examples.counter" if use == "egg:wsgisession#counter" else None


def probe(case: Case, directory: Path) -> dict[str, Any]:
    """Check that ``case``'s server loads every module of its tree from the tree's directory."""
    assert case.tree is not None
    tree = case.tree
    argv = case.target.launch(0)
    ini = argv[argv.index("serve") + 1]
    answer = subprocess.run(
        [*tree.prefix(directory), interpreter(argv), "-c", PROBE, str(Path(argv[0]).parent), ini, *TREE_PACKAGES],
        capture_output=True, text=True, timeout=120, env=child_env(), cwd=case.target.cwd,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"{case.name}: the import probe failed:\n{answer.stderr[-2000:]}")
    modules: dict[str, str | None] = json.loads(answer.stdout.strip().splitlines()[-1])
    elsewhere = {name: path for name, path in modules.items()
                 if path is not None and not Path(path).resolve().is_relative_to(tree.root)}
    app = app_module(Path(ini))
    missing = [name for name in ("wsgisession", app) if name and not modules.get(name)]
    if elsewhere or missing:
        raise RuntimeError(f"{case.name}: the server would not run {tree.root}'s code: "
                           f"{elsewhere or f'{missing} not loaded'}")
    return {name: str(Path(str(modules[name])).resolve()) for name in ("wsgisession", app) if name} | \
        {"modules": len(modules)}


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def counted(pid: int, out: Path, run: Callable[[], _R]) -> tuple[int | None, _R]:
    """The server's instructions while ``run()`` runs (instrumentation on, counters zeroed, then dumped), and its
    result; ``None`` if the dump (the newest ``out.<pid>.*``) holds no summary."""
    control(pid, "-i", "on")
    control(pid, "-z")
    result = run()
    control(pid, "-d")
    control(pid, "-i", "off")
    dumps = sorted(out.parent.glob(f"{out.name}.{pid}.*"), key=lambda p: p.stat().st_mtime)
    summary = re.search(r"^summary: (\d+)", dumps[-1].read_text(), re.MULTILINE)
    return (int(summary.group(1)) if summary else None), result


@dataclass(frozen=True)
class Cores:
    """Where the processes run: the server alone on one core; the load client, redis-server and this script
    (and the callgrind_control it runs) on another, as run.py pins them. None: anywhere."""

    server: set[int] | None = None
    client: set[int] | None = None


def measure(case: Case, outdir: Path, sessions: int, events: int, warmup: int,
            cores: Cores = Cores(), hash_seed: int | None = None) -> dict[str, float]:
    """Start ``case``'s server under callgrind and count its instructions per event for each workload.

    ``hash_seed``: the server's PYTHONHASHSEED. String hashes decide collisions in dictionaries and in the
    interpreter's type attribute cache: with random seeds, one process of the same code counted 0.4% more
    than another on every workload alike.
    """
    target = case.target
    port = free_port()
    out = outdir / target.name.replace("/", "-").replace(":", "-")
    prefix = case.tree.prefix(outdir) if case.tree is not None else []
    if hash_seed is not None:
        prefix = [*(prefix or ["env"]), f"PYTHONHASHSEED={hash_seed}"]
    argv = [*prefix, "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p",
            *target.launch(port)]
    proc = start(target.name, argv, port=port, logdir=outdir, cores=cores.server, cwd=target.cwd, timeout=180)
    found: dict[str, float] = {}
    try:
        with load_client(proc.url, cores.client, outdir) as client:
            client.call({"cmd": "login", "sessions": sessions, "prefix": "cg"}, timeout=600)
            client.call({"cmd": "connect", "per_session": 1}, timeout=600)
            for workload in target.workloads:
                client.call({"cmd": "events", "event": workload, "per_socket": warmup}, timeout=600)
                instructions, answer = counted(proc.pid, out, lambda: client.call(
                    {"cmd": "events", "event": workload, "per_socket": events}, timeout=900))
                acked = int(answer.get("acked") or 0)
                if instructions and acked:
                    found[workload] = instructions / acked
                print(f"  {target.name:28s} {workload:7s} {found.get(workload, 0):>12,.0f} instructions/event "
                      f"({acked} events)", flush=True)
    finally:
        proc.stop()
    return found


def start_redis(directory: Path, databases: int, cores: set[int] | None) -> tuple[str, Any]:
    """A private redis-server on a free port of 127.0.0.1 (no persistence), as run.py starts one."""
    binary = shutil.which("redis-server")
    assert binary is not None
    port = free_port()
    proc = start("redis-server", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", str(directory), "--databases", str(databases)],
                 port=port, logdir=directory, cores=cores)
    return f"redis://127.0.0.1:{port}/0", proc


def git_state(root: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                                  cwd=root).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--", "wsgisession", "examples")
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty_library": bool(status)}


def ratios(results: dict[str, dict[str, float]], cases: list[Case], trees: list[Tree]) -> dict[str, dict[str, Any]]:
    """Per target (without label) and workload: each later tree's instructions per event over the first's."""
    first = trees[0]
    found: dict[str, dict[str, Any]] = {}
    for case in cases:
        if case.tree is None or case.tree == first:
            continue
        baseline = results.get(first.name(case.base), {})
        for workload, value in results.get(case.name, {}).items():
            if baseline.get(workload):
                found.setdefault(case.base, {}).setdefault(workload, {})[f"{case.tree.label}/{first.label}"] = \
                    value / baseline[workload]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="*", help="globs, e.g. 'wsgisession/memory,bare-socketio'; with --tree "
                        "a glob matches with or without the label ('wsgisession/*', 'before:*')")
    parser.add_argument("--tree", action="append", type=tree_arg, metavar="LABEL=DIR", default=[],
                        help="run our targets on the code of DIR too, named LABEL:wsgisession/STORE (repeatable; "
                             "default: this checkout only, unlabelled); ratios are to the first tree")
    parser.add_argument("--sessions", type=int, default=10, help="sockets (one session each)")
    parser.add_argument("--events", type=int, default=30, help="acked events per socket and workload")
    parser.add_argument("--warmup", type=int, default=10, help="uncounted events per socket before each workload")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every server this many times, round by round, and keep the lowest count per "
                             "workload (Redis rows move by up to ~1%% from run to run, mostly upwards: the store "
                             "pipelines the commands of concurrent events, as many as happen to be waiting)")
    parser.add_argument("--stat", choices=("min", "median"), default="min",
                        help="with --repeat: which of the runs' counts the tables show (default min)")
    parser.add_argument("--hash-seed", default="0",
                        help="PYTHONHASHSEED of every server in the first run, plus 1 in each next run of --repeat "
                             "(the trees of one run share it); 'random' leaves it random (default 0)")
    parser.add_argument("--no-redis", action="store_true", help="skip wsgisession/redis even if redis-server exists")
    parser.add_argument("--clock-work", action="store_true",
                        help="leave our servers' timers (touch, sweep, pings, lock renewal) at the INI's defaults: "
                             "counts then move by up to 1-2%% from run to run")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server to a core of its own (and the "
                        "load client, redis-server and this script to another)")
    parser.add_argument("--output", help="JSON results (default benchmarks/results/<date>-<host>-callgrind.json)")
    parser.add_argument("--keep", metavar="DIR",
                        help="work in DIR and keep it: the callgrind dumps (one per workload: "
                             "callgrind_annotate), the servers' INI files and logs")
    args = parser.parse_args(argv)
    if args.hash_seed != "random" and not args.hash_seed.isdigit():
        parser.error("--hash-seed takes a number or 'random'")
    for tool in ("valgrind", "callgrind_control", "node"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is needed")
    labels = [tree.label for tree in args.tree]
    if len(set(labels)) != len(labels):
        parser.error("--tree labels must differ")
    trees = [Tree(t.label, t.root, i) for i, t in enumerate(args.tree)] or [Tree(None, ROOT)]
    globs = [g.strip() for g in args.targets.split(",") if g.strip()]
    notes: list[str] = []
    want_redis = any(selected(tree.name("wsgisession/redis"), "wsgisession/redis", globs) for tree in trees)
    if want_redis and not args.no_redis and shutil.which("redis-server") is None:
        notes.append("wsgisession/redis: redis-server not found (apt-get install -y redis-server)")
    cpus = sorted(os.sched_getaffinity(0))
    cores = Cores() if args.no_pin or len(cpus) < 2 else Cores({cpus[0]}, {cpus[1]})
    if cores.client:
        os.sched_setaffinity(0, cores.client)  # and callgrind_control, which this script runs
    runs: dict[str, list[dict[str, float]]] = {}
    errors: dict[str, str] = {}
    probes: dict[str, dict[str, Any]] = {}
    workdir = (contextlib.nullcontext(args.keep) if args.keep
               else tempfile.TemporaryDirectory(prefix="wsgisession-callgrind-"))
    with workdir as tmp, contextlib.ExitStack() as stack:
        directory = Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        redis_url = None
        if want_redis and not args.no_redis and shutil.which("redis-server") is not None:
            redis_url, redis_proc = start_redis(directory, max(16, len(trees)), cores.client)
            stack.callback(redis_proc.stop)
        for tree in trees:
            tree.prepare(directory)
        cases = targets_for(directory, preflight(), trees, globs, redis_url, clock_work=args.clock_work)
        for rnd in range(args.repeat):
            if args.repeat > 1:
                print(f"run {rnd + 1}/{args.repeat}", flush=True)
            for case in cases:
                if case.name in errors:
                    continue
                try:
                    if case.tree is not None and case.name not in probes:
                        probes[case.name] = probe(case, directory)
                        print(f"  {case.name:28s} imports {probes[case.name]['wsgisession']}", flush=True)
                    runs.setdefault(case.name, []).append(measure(
                        case, directory, args.sessions, args.events, args.warmup, cores,
                        None if args.hash_seed == "random" else int(args.hash_seed) + rnd))
                except RuntimeError as exc:
                    errors[case.name] = str(exc)
                    print(f"  {case.name}: {exc}", file=sys.stderr, flush=True)
    pick = min if args.stat == "min" else statistics.median
    results = {name: {w: pick(r[w] for r in found if w in r) for w in found[0]}
               for name, found in runs.items() if name not in errors and found}
    spread = {name: {w: (max(r[w] for r in runs[name]) - min(r[w] for r in runs[name])) / v for w, v in found.items()}
              for name, found in results.items()}
    width = max([20, *(len(name) for name in results)])
    print(f"\nServer instructions per acked websocket event ({args.sessions} sockets x {args.events} events"
          + (f"; {args.stat} of {args.repeat} runs, spread = (max - min) / {args.stat})" if args.repeat > 1 else ")"))
    print(f"{'target':{width}s} {'event':7s} {'instr/ev':>10s} {'/ our echo':>10s} {'/ bare echo':>11s}"
          + (f" {'spread':>7s}" if args.repeat > 1 else ""))
    bare_echo = results.get("bare-socketio", {}).get("echo")
    by_name = {case.name: case for case in cases}
    for name, found in results.items():
        tree = by_name[name].tree or trees[0]
        ours_echo = results.get(tree.name("wsgisession/memory"), {}).get("echo")
        for workload, value in found.items():
            own = found.get("echo", ours_echo)
            print(f"{name:{width}s} {workload:7s} {value:>10,.0f} {value / own if own else 0:>9.2f}x "
                  f"{value / bare_echo if bare_echo else 0:>10.2f}x"
                  + (f" {spread[name][workload]:>6.2%}" if args.repeat > 1 else ""))
    compared = ratios(results, cases, trees) if len(trees) > 1 else {}
    if compared:
        first = trees[0]
        later = trees[1:]
        print(f"\nInstructions per event over {first.label}'s ({first.root})")
        header = f"{'target':20s} {'event':7s} {first.label!s:>12s}"
        for tree in later:
            header += f" {tree.label!s:>12s} {f'{tree.label}/{first.label}':>14s}"
        print(header)
        for base, workloads in compared.items():
            for workload in workloads:
                line = f"{base:20s} {workload:7s} {results[first.name(base)][workload]:>12,.0f}"
                for tree in later:
                    theirs = results.get(tree.name(base), {}).get(workload)
                    ratio = workloads[workload].get(f"{tree.label}/{first.label}")
                    line += f" {theirs or 0:>12,.0f} {ratio or 0:>14.4f}"
                print(line)
        for tree in trees:
            print(f"  {tree.label} = {tree.root}")
    for name, error in errors.items():
        print(f"\n{name} failed: {error.splitlines()[0]}")
    for note in notes:
        print(f"\nnote: {note}")
    host = machine(args, cores.server, cores.client)
    stamp = datetime.date.today().isoformat()
    output = Path(args.output) if args.output else RESULTS / f"{stamp}-{host['host']}-callgrind.json"
    sizes = {k: v for k, v in vars(args).items() if k != "tree"}
    tree_info = {str(tree.label): {"dir": str(tree.root), **git_state(tree.root),
                                   "imports": {n: p for n, p in probes.items() if by_name[n].tree == tree}}
                 for tree in trees if tree.label is not None}
    output.write_text(json.dumps({"command": sys.argv, "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                                  "sizes": sizes, "trees": tree_info, "instructions_per_event": results,
                                  "ratios": compared, "runs": runs, "spread": spread, "errors": errors,
                                  "notes": notes,
                                  "machine": host}, indent=2) + "\n")
    print(f"\nraw results: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
