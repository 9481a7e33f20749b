"""Deploying: the examples started as their READMEs say, production.ini on gunicorn, errors that name the problem.

Every server here is a real process started from the shipped files (the INI
is copied into a scratch ``conf/`` so that its ``%(here)s/../data`` lands in
the test's directory), driven by real clients: requests over HTTP and the
python-socketio client over the socket.
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import socketio
import urllib3

from tests.helpers import ROOT, SECRET, close_transport, connect, cookie_header, counter_cookie, wait_until
from tests.servers import BIN, Server, child_env, free_port, gunicorn, gunicorn_app, serve, write_ini

EXAMPLES = ("flask_app", "pyramid_app", "werkzeug_app")
SHARED_CONTRACT = ("werkzeug_app",)  # POST /login?user=, /incr, /logout; set_note (flask_app, pyramid_app: their own)


def readme_commands(example: str) -> list[str]:
    """The shell commands (``$ ...`` lines) of an example's README."""
    text = (ROOT / "examples" / example / "README.rst").read_text(encoding="utf-8")
    return re.findall(r"^\s+\$ (.+)$", text, flags=re.MULTILINE)


def copy_conf(directory: Path, relative: str, *, section: str = "", **options: str) -> Path:
    """The shipped INI ``relative`` (``conf/x.ini``) copied under ``directory``.

    ``options`` (keys with ``__`` for dots) replace or join the lines of ``[section]``.
    """
    target = directory / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / relative, target)
    if options:
        text = target.read_text()
        head = f"[{section}]\n"
        start = text.index(head) + len(head)
        end = text.find("\n[", start)
        end = len(text) if end < 0 else end + 1
        body = text[start:end]
        for key, value in options.items():
            key = key.replace("__", ".")
            line = f"{key} = {value}"
            body, found = re.subn(rf"^{re.escape(key)} =.*$", line, body, flags=re.MULTILINE)
            if not found:
                body = line + "\n" + body
        target.write_text(text[:start] + body + text[end:])
    return target


@contextlib.contextmanager
def start(command: str, directory: Path) -> Iterator[Server]:
    """Run a README command on a free port of 127.0.0.1, its INI copied under ``directory``."""
    argv = shlex.split(command)
    env: dict[str, str] = {}
    while "=" in argv[0]:
        name, _, value = argv.pop(0).partition("=")
        env[name] = SECRET if value == "..." else value
    if argv[:2] == ["wsgisession", "serve"] and len(argv) == 3:
        with serve(copy_conf(directory, argv[2])) as server:
            yield server
    elif argv[:2] == ["gunicorn", "--paste"] and argv[3:] == ["-c", "conf/gunicorn.conf.py"]:
        with gunicorn(copy_conf(directory, argv[2])) as server:
            yield server
    elif argv[:3] == ["gunicorn", "-c", "conf/gunicorn.conf.py"] and len(argv) == 4:
        with gunicorn_app(argv[3], directory, env=env) as server:
            yield server
    else:
        raise AssertionError(f"this test does not know how to run {command!r}")


# -- the examples, as their READMEs start them ---------------------------
README_CASES = [(example, command) for example in SHARED_CONTRACT for command in readme_commands(example)]


@pytest.mark.parametrize(("example", "command"), README_CASES, ids=[f"{e}: {c}" for e, c in README_CASES])
def test_example_view_and_socket_share_the_session(tmp_path: Path, example: str, command: str) -> None:
    with start(command, tmp_path) as server, requests.Session() as http:
        base = server.url
        assert http.get(base + "/login", params={"user": "ann"}, timeout=10).status_code == 405  # POST only
        http.post(base + "/login", params={"user": "ann"}, timeout=10).raise_for_status()
        assert http.post(base + "/incr", timeout=10).json() == {"n": 1}
        client = connect(base, cookie=cookie_header(http))
        counts: list[Any] = []
        ended: list[Any] = []
        client.on("count", counts.append)
        client.on("session_ended", ended.append)
        try:
            assert client.call("whoami", timeout=10) == "ann"  # written by the login view
            assert client.call("incr", timeout=10) == 2  # the view's counter
            client.call("set_note", "from the socket", timeout=10)
            assert http.post(base + "/incr", timeout=10).json() == {"n": 3}  # the event's write, seen by HTTP
            assert client.call("incr", timeout=10) == 4  # HTTP's write, seen by the next event
            assert http.get(base + "/", timeout=10).json() == {"user": "ann", "n": 4, "note": "from the socket"}
            refused = http.post(base + "/logout", headers={"Origin": "http://evil.example"}, timeout=10)
            assert refused.status_code == 403 and client.connected  # another site's page: nothing ends
            http.post(base + "/logout", headers={"Origin": base}, timeout=10).raise_for_status()
            wait_until(lambda: bool(ended) and not client.connected, timeout=10.0)
            assert ended[0]["reason"] == "logout"
        finally:
            client.disconnect()


def test_every_example_readme_names_both_servers() -> None:
    for example in EXAMPLES:
        commands = " | ".join(readme_commands(example))
        assert "wsgisession serve" in commands and "gunicorn" in commands, example


# -- bad configuration: errors that name the key -------------------------
def run_serve(ini: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``wsgisession serve`` expected to fail: its exit code and output."""
    return subprocess.run(
        [str(BIN / "wsgisession"), "serve", str(ini), *(args or ("--port", "0"))],
        capture_output=True, text=True, timeout=60, env=child_env(), cwd=ini.parent,
    )


BAD_VALUES = [
    ("wsgisession.lock_timeout", "fast", ["wsgisession.lock_timeout = 'fast'"]),
    ("beaker.session.secure", "maybe", ["beaker.session.secure = 'maybe'"]),
    ("socketio.ping_interval", "often", ["socketio.ping_interval = 'often'"]),
    ("wsgisession.lock_timout", "5", ["unknown option wsgisession.lock_timout"]),
    ("beaker.session.type", "dbm", ["session type 'dbm' is not supported"]),
    ("wsgisession.handlers", "examples.werkzeug_app.sockets:nope",
     ["cannot import 'examples.werkzeug_app.sockets:nope'"]),
]


@pytest.mark.parametrize(("key", "value", "named"), BAD_VALUES, ids=[f"{k} = {v}" for k, v, _ in BAD_VALUES])
def test_serve_exits_2_naming_a_bad_ini_value(tmp_path: Path, key: str, value: str, named: list[str]) -> None:
    ini = copy_conf(tmp_path, "conf/werkzeug.ini", section="app:main", **{key.replace(".", "__"): value})
    result = run_serve(ini)
    assert result.returncode == 2, result.stderr
    message = result.stderr.splitlines()[-1]
    assert message.startswith(f"wsgisession: cannot load {ini}")
    for text in named:
        assert text in message


def test_serve_exits_2_naming_a_duplicate_ini_key(tmp_path: Path) -> None:
    ini = copy_conf(tmp_path, "conf/werkzeug.ini")
    ini.write_text(ini.read_text().replace("[app:main]\n", "[app:main]\nbeaker.session.type = file\n"))
    result = run_serve(ini)
    assert result.returncode == 2
    assert "beaker.session.type" in result.stderr.splitlines()[-1]


def test_serve_names_a_missing_environment_secret(tmp_path: Path) -> None:
    ini = copy_conf(tmp_path, "conf/production.ini")
    env = child_env(REDIS_URL="redis://127.0.0.1:1/0")
    env.pop("SESSION_SECRET", None)
    result = subprocess.run([str(BIN / "wsgisession"), "serve", str(ini), "--port", "0"],
                            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert "beaker.session.secret" in last and "SESSION_SECRET" in last


def test_gunicorn_fails_to_boot_naming_a_bad_ini_value(tmp_path: Path) -> None:
    ini = copy_conf(tmp_path, "conf/werkzeug.ini", section="app:main", wsgisession__lock_timeout="fast")
    result = subprocess.run(
        [str(BIN / "gunicorn"), "--paste", str(ini), "-c", str(ROOT / "conf" / "gunicorn.conf.py"),
         "-b", f"127.0.0.1:{free_port()}", "--no-control-socket"],
        capture_output=True, text=True, timeout=60, env=child_env(), cwd=tmp_path,
    )
    assert result.returncode == 3  # gunicorn's "Worker failed to boot."
    assert "wsgisession.lock_timeout = 'fast'" in result.stderr
    assert "Worker failed to boot" in result.stderr


def test_serve_exits_2_on_a_taken_port(tmp_path: Path) -> None:
    ini = copy_conf(tmp_path, "conf/werkzeug.ini")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(ini, "--port", str(port))
    assert result.returncode == 2
    message = result.stderr.splitlines()[-1]
    assert message.startswith(f"wsgisession: cannot listen on 127.0.0.1:{port}: Address already in use")


def test_gunicorn_stops_without_waiting_for_an_idle_keep_alive_client(tmp_path: Path) -> None:
    ini = copy_conf(tmp_path, "conf/werkzeug.ini")
    with gunicorn(ini, extra_args=("--graceful-timeout", "6")) as server, requests.Session() as http:
        http.get(server.url + "/", timeout=10).raise_for_status()  # its connection stays open and idle
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 4.5


# -- production.ini: Redis, several workers, restarts ---------------------
@contextlib.contextmanager
def production(directory: Path, redis_url: str, **options: Any) -> Iterator[Server]:
    """conf/production.ini under gunicorn as its comment says (shorter graceful timeout)."""
    ini = directory / "conf" / "production.ini"
    if not ini.exists():
        copy_conf(directory, "conf/production.ini")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SESSION_SECRET", SECRET)
        env.setenv("REDIS_URL", redis_url)
        with gunicorn(ini, **options) as server:
            yield server


def counter(base: str, cookie: str) -> int:
    response = requests.get(base + "/n", headers={"Cookie": cookie}, timeout=10)
    response.raise_for_status()
    return int(response.text)


@pytest.mark.redis
def test_production_ini_under_serve_honours_its_logging_sections(tmp_path: Path, redis_url: str) -> None:
    ini = copy_conf(tmp_path, "conf/production.ini")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SESSION_SECRET", SECRET)
        env.setenv("REDIS_URL", redis_url)
        with serve(ini) as server:
            cookie = counter_cookie(server.url, "ann")
            client = connect(server.url, cookie=cookie)
            try:
                assert client.call("incr", timeout=10) == 1
            finally:
                client.disconnect()
            assert counter(server.url, cookie) == 1
    assert re.search(r"INFO  \[wsgisession\.serve:\d+\] serving ", server.output())


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request never reached a server (connection refused)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


@dataclass
class Tally:
    """What the load clients know about their increments."""

    acked: int = 0  # answered: counted for sure
    unknown: int = 0  # sent, never answered: may or may not have counted
    refused: int = 0  # never reached a worker
    server_errors: int = 0  # 5xx answers (also counted as unknown)
    acked_after: dict[str, int] = field(default_factory=lambda: {"http": 0, "socket": 0})
    joins: list[int] = field(default_factory=list)  # socket connections made, per socket client
    failures: list[str] = field(default_factory=list)
    after: bool = False  # set once the restart is over
    since: float | None = None  # a moment (time.monotonic()) after which each socket client's first ack is noted
    first_socket_ack: dict[int, float] = field(default_factory=dict)  # socket client -> its first ack after since
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, kind: str, client: int | None = None) -> None:
        with self.lock:
            self.acked += 1
            if self.after:
                self.acked_after[kind] += 1
            if client is not None and self.since is not None and client not in self.first_socket_ack:
                now = time.monotonic()
                if now > self.since:
                    self.first_socket_ack[client] = now

    def fail(self, outcome: str, what: str, *, server_error: bool = False) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            self.server_errors += server_error
            self.failures.append(f"{outcome}: {what}")


class Load:
    """HTTP and socket clients of one session doing ``incr`` in a loop; they retry and reconnect."""

    def __init__(self, base: str, cookie: str, *, http_clients: int = 3, socket_clients: int = 3,
                 call_timeout: float = 3.0) -> None:
        self.base, self.cookie = base, cookie
        self.call_timeout = call_timeout  # how long a socket client waits for an ack before it reconnects
        self.tally = Tally(joins=[0] * socket_clients)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.http_client) for _ in range(http_clients)]
        self.threads += [threading.Thread(target=self.socket_client, args=(i,)) for i in range(socket_clients)]

    def __enter__(self) -> Tally:
        for thread in self.threads:
            thread.start()
        return self.tally

    def __exit__(self, *exc_info: Any) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def http_client(self) -> None:
        http = requests.Session()  # keep-alive, as browsers do
        while not self.stopping.is_set():
            try:
                response = http.post(self.base + "/incr", headers={"Cookie": self.cookie}, timeout=10)
            # ChunkedEncodingError: the worker died while its answer came (not a ConnectionError)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                self.tally.fail("refused" if _never_sent(exc) else "unknown", f"http {exc!r}"[:200])
                http.close()
                http = requests.Session()
                time.sleep(0.02)
                continue
            except requests.Timeout as exc:
                self.tally.fail("unknown", f"http {exc!r}"[:200])
                continue
            if response.status_code == 200:
                self.tally.ack("http")
            else:
                self.tally.fail("unknown", f"http {response.status_code} {response.text[:100]!r}",
                                server_error=response.status_code >= 500)
        http.close()

    def socket_client(self, index: int) -> None:
        client: socketio.Client | None = None
        while not self.stopping.is_set():
            if client is None:
                try:
                    client = connect(self.base, cookie=self.cookie)  # the same cookie: the same session
                except socketio.exceptions.ConnectionError as exc:
                    self.tally.fail("refused", f"socket connect {exc!r}"[:200])
                    time.sleep(0.05)
                    continue
                self.tally.joins[index] += 1
            try:
                answer = client.call("incr", timeout=self.call_timeout)
            except socketio.exceptions.TimeoutError:
                self.tally.fail("unknown", "socket: no ack")
            except (socketio.exceptions.BadNamespaceError, socketio.exceptions.DisconnectedError):
                self.tally.fail("refused", "socket: disconnected before the call")
            else:
                if answer == {"error": "server_stopping"}:  # not run: the worker is stopping
                    self.tally.fail("refused", "socket: server_stopping")
                elif isinstance(answer, dict) and "error" in answer:  # lock_timeout, store_unavailable: not counted
                    self.tally.fail("unknown", f"socket: {answer}")
                    continue
                else:
                    self.tally.ack("socket", index)
                    continue
            with contextlib.suppress(Exception):
                client.disconnect()
            close_transport(client)
            client = None
        if client is not None:
            client.disconnect()
            close_transport(client)


def booted_pids(server: Server) -> list[str]:
    return re.findall(r"Booting worker with pid: (\d+)", server.output())


@dataclass
class Run:
    tally: Tally
    final: int
    log: str
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def sighup_run(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Run:
    """Two workers under load from HTTP and socket clients of one session; SIGHUP to the master."""
    directory = tmp_path_factory.mktemp("sighup")
    with production(directory, redis_url, workers=2, extra_args=("--graceful-timeout", "3")) as server:
        cookie = counter_cookie(server.url, "hup")
        # a tampered cookie is logged by wsgisession.security, formatted by the INI's [formatter_generic]
        forged = cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")
        assert requests.get(server.url + "/n", headers={"Cookie": forged}, timeout=10).status_code == 401
        old = booted_pids(server)
        assert len(old) == 2
        with Load(server.url, cookie) as tally:
            time.sleep(1.0)
            server.process.send_signal(signal.SIGHUP)
            wait_until(lambda: all(f"Worker exiting (pid: {pid})" in server.output() for pid in old), timeout=20)
            wait_until(lambda: len(booted_pids(server)) >= 4, timeout=10.0)
            tally.after = True
            with contextlib.suppress(AssertionError):  # the test says what is missing
                wait_until(lambda: min(tally.joins) >= 2 and min(tally.acked_after.values()) > 0, timeout=15)
        final = counter(server.url, cookie)
        return Run(tally=tally, final=final, log=server.output())


@pytest.mark.redis
@pytest.mark.slow
def test_production_sighup_under_load_loses_no_acknowledged_update(sighup_run: Run) -> None:
    tally, final = sighup_run.tally, sighup_run.final
    assert tally.acked > 100
    # every acknowledged increment is there; any extra one is a request whose answer the client never got
    assert tally.acked <= final <= tally.acked + tally.unknown, tally.failures
    # the new workers serve both sides, and every socket came back to its session with the same cookie
    assert tally.acked_after["http"] > 0 and tally.acked_after["socket"] > 0
    assert all(joins >= 2 for joins in tally.joins), tally.joins


@pytest.mark.redis
@pytest.mark.slow
def test_production_ini_logging_sections_are_honoured_by_gunicorn(sighup_run: Run) -> None:
    assert re.search(r"WARNI \[wsgisession\.security:\d+\] tampered session cookie from 127\.0\.0\.1", sighup_run.log)


def test_production_ini_documents_its_gunicorn_command() -> None:
    text = (ROOT / "conf" / "production.ini").read_text()
    assert "gunicorn --paste conf/production.ini -c conf/gunicorn.conf.py -w 1" in text
    assert "beaker.session.secret = env:SESSION_SECRET" in text


def assert_nothing_taken_up_was_killed(run: Run) -> None:
    """Every request and event a worker took up was finished and answered: no 5xx, no increment without its ack."""
    assert run.tally.server_errors == 0, run.tally.failures
    assert run.final == run.tally.acked, run.tally.failures


@pytest.mark.redis
@pytest.mark.slow
def test_production_sighup_finishes_every_request_and_event_it_took_up(sighup_run: Run) -> None:
    assert_nothing_taken_up_was_killed(sighup_run)


@pytest.fixture(scope="module")
def sigterm_run(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Run:
    """Two workers under load; one request waits for its session's lock when SIGTERM reaches the master."""
    from wsgisession.cookies import SessionCookie
    from wsgisession.store import Store

    directory = tmp_path_factory.mktemp("sigterm")
    store = Store(type="ext:redis", url=redis_url, lock_timeout=5.0, lock_ttl=5.0)
    with production(directory, redis_url, workers=2, extra_args=("--graceful-timeout", "3")) as server:
        cookie = counter_cookie(server.url, "term")
        slow_cookie = counter_cookie(server.url, "slow")
        slow_id = SessionCookie(secret=SECRET, name="counter.sid").read({"HTTP_COOKIE": slow_cookie})
        slow: dict[str, Any] = {}

        def slow_request() -> None:
            try:
                response = requests.post(server.url + "/incr", headers={"Cookie": slow_cookie}, timeout=20)
                slow["answer"] = (response.status_code, response.text.strip())
            except requests.RequestException as exc:
                slow["answer"] = repr(exc)

        with Load(server.url, cookie) as tally:
            time.sleep(1.0)
            with store.transaction(slow_id):  # another process holds the session: the request waits inside the app
                waiting = threading.Thread(target=slow_request)
                waiting.start()
                time.sleep(0.5)
                signalled = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                time.sleep(1.0)
            waiting.join(20)
            code = server.process.wait(30)
            stopped_after = time.monotonic() - signalled
        log = server.output()
    with production(directory, redis_url, workers=2) as server:  # the same INI and Redis, started again
        final = counter(server.url, cookie)
        client = connect(server.url, cookie=cookie)
        try:
            user = client.call("whoami", timeout=10)
        finally:
            client.disconnect()
        slow_final = counter(server.url, slow_cookie)
    return Run(tally=tally, final=final, log=log, extra={
        "code": code, "stopped_after": stopped_after, "slow": slow.get("answer"), "slow_final": slow_final,
        "user": user,
    })


@pytest.mark.redis
@pytest.mark.slow
def test_production_sigterm_finishes_the_request_in_progress_and_loses_no_update(sigterm_run: Run) -> None:
    extra, tally = sigterm_run.extra, sigterm_run.tally
    assert extra["slow"] == (200, "1")  # in progress when SIGTERM arrived: answered, and saved
    assert extra["slow_final"] == 1
    assert extra["code"] == 0 and extra["stopped_after"] < 3 + 5, sigterm_run.log[-2000:]
    assert tally.acked > 100
    assert tally.acked <= sigterm_run.final <= tally.acked + tally.unknown, tally.failures
    assert extra["user"] == "term"  # after a full restart a socket joins the same session with its cookie


@pytest.mark.redis
@pytest.mark.slow
def test_production_sigterm_finishes_every_request_and_event_it_took_up(sigterm_run: Run) -> None:
    assert_nothing_taken_up_was_killed(sigterm_run)


# -- plain `gunicorn -k gevent`: no websocket handler ----------------------------
def test_plain_gevent_worker_serves_http_and_polling_and_refuses_websocket_in_one_line(tmp_path: Path) -> None:
    """gevent-websocket's handler is not there to hand the upgrade over: a clear 400, never a traceback."""
    with gunicorn(write_ini(tmp_path, **{"beaker.session.key": "counter.sid"}), extra_args=("-k", "gevent")) as server:
        cookie = counter_cookie(server.url, "plain")
        for _ in range(2):  # each upgrade is refused plainly; the log says why once
            with pytest.raises(socketio.exceptions.ConnectionError):
                connect(server.url, cookie=cookie, transport="websocket")
        upgrade = requests.get(server.url + "/socket.io/?EIO=4&transport=websocket", timeout=10,
                               headers={"Upgrade": "websocket", "Connection": "Upgrade", "Cookie": cookie})
        assert upgrade.status_code == 400 and b"use -k wsgisession.server.Worker" in upgrade.content
        polling = connect(server.url, cookie=cookie, transport="polling")
        try:
            assert polling.call("incr", timeout=10) == 1
        finally:
            polling.disconnect()
        output = server.output()
    assert "Using worker: gevent" in output
    assert output.count("does not hand websocket upgrades to the app") == 1
    assert "Traceback" not in output and "not configured appropriately" not in output


@pytest.mark.redis
@pytest.mark.slow
def test_a_sigkilled_worker_under_load_loses_nothing_acknowledged_and_its_clients_come_back(
    tmp_path: Path, redis_url: str
) -> None:
    """#21: kill -9 of one worker of two in mixed load: the session lock it held in Redis is freed by the
    first waiter of this host that sees its pid is gone (elsewhere it expires: lock_ttl 5 s, shorter than
    lock_timeout 10 s), gunicorn boots a new worker, the clients reconnect by themselves; every
    acknowledged increment is in the store and nothing is a traceback."""
    with production(tmp_path, redis_url, workers=2) as server:
        cookie = counter_cookie(server.url, "kill")
        victim = booted_pids(server)[0]
        clients = 3
        # python-socketio's call() waits out its timeout even when the connection died: keep it short
        with Load(server.url, cookie, socket_clients=clients, call_timeout=1.0) as tally:
            time.sleep(1.5)
            killed = time.monotonic()
            tally.since = killed + 0.2  # past the events in flight at the kill
            os.kill(int(victim), signal.SIGKILL)
            wait_until(lambda: len(booted_pids(server)) >= 3, timeout=15.0)  # the master replaced it
            tally.after = True
            wait_until(lambda: len(tally.first_socket_ack) == clients and min(tally.acked_after.values()) > 0,
                       timeout=15.0)
            back = max(tally.first_socket_ack.values()) - killed  # every socket client served again
            acked_before_end = tally.acked
            time.sleep(1.0)
        final = counter(server.url, cookie)
        log = server.output()
    print(f"\nworker {victim} SIGKILLed: HTTP and sockets served again after {back:.2f} s; "
          f"{tally.acked} acknowledged, {tally.unknown} unknown, final {final}")
    assert acked_before_end > 50
    assert tally.acked <= final <= tally.acked + tally.unknown, tally.failures[-10:]
    # a dead holder's lock on this host is freed at once: the time is the clients' own reconnection delay
    assert back < 3.0, f"served again only after {back:.1f} s"
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.redis
@pytest.mark.slow
def test_after_sighup_clients_reconnect_by_themselves_to_new_workers_and_old_ones_exit_at_once(
    tmp_path: Path, redis_url: str
) -> None:
    """#21: a stopping worker stops accepting at once and closes its connections once its events are done.

    The clients are python-socketio's with its default reconnection (1 s, randomized by half):
    nothing in them knows about the restart.
    """
    graceful = 10
    with production(tmp_path, redis_url, workers=2, extra_args=("--graceful-timeout", str(graceful))) as server:
        cookie = counter_cookie(server.url, "hup")
        old = booted_pids(server)
        clients = []
        for _ in range(6):
            client = socketio.Client()  # the default: reconnect by itself
            client.connect(server.url, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=10)
            clients.append(client)
        try:
            assert [client.call("whoami", timeout=10) for client in clients] == ["hup"] * 6
            dropped = [client.eio.ws for client in clients]  # python-engineio leaves them open when they drop
            time.sleep(1.0)  # both workers up: gunicorn's worker ignores a SIGTERM that comes before its handlers
            started = time.monotonic()
            server.process.send_signal(signal.SIGHUP)
            try:
                wait_until(lambda: all(f"Worker exiting (pid: {pid})" in server.output() for pid in old),
                           timeout=graceful)
            except AssertionError:
                raise AssertionError(f"old workers {old} still running:\n{server.output()[-4000:]}") from None
            exited = time.monotonic() - started

            waiting: list[str] = []

            def all_answer() -> bool:
                for n, client in enumerate(clients):
                    try:
                        if client.call("incr", timeout=1) == {"error": "server_stopping"}:
                            waiting.append(f"{n}: server_stopping")
                            return False
                    except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError,
                            socketio.exceptions.DisconnectedError) as exc:
                        waiting.append(f"{n}: {type(exc).__name__} connected={client.connected} "
                                       f"reconnecting={client._reconnect_task is not None}")
                        return False
                return True

            try:
                wait_until(all_answer, timeout=10.0)
            except AssertionError:
                raise AssertionError(f"clients not served again: {waiting[-6:]}\n{server.output()[-3000:]}") from None
            back = time.monotonic() - started
        finally:
            for client in clients:
                client.disconnect()
            for websocket in dropped:
                websocket.shutdown()
        log = server.output()
    assert exited < graceful / 2, f"the old workers took {exited:.1f} s to exit"
    assert back < 4.0, f"the clients took {back:.1f} s to be served again"  # 1-1.5 s of the client's own delay
    assert "graceful timeout" not in log and "Traceback" not in log
