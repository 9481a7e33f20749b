"""Real servers for the tests: started on free ports of 127.0.0.1.

Every helper here starts a real process (``wsgisession serve``, gunicorn with
our gevent websocket worker, ``redis-server``, ``rabbitmq-server``, ``nginx``) and stops it when done. Their
clients (HTTP logins, sockets) are in ``tests/helpers.py``.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tests.helpers import ROOT, SECRET

BIN = Path(sys.executable).parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 15.0, process: subprocess.Popen[Any] | None = None,
                  host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def write_ini(directory: Path, *, use: str = "call:examples.counter:app_factory", name: str = "app.ini", **settings: Any) -> Path:
    """An INI file for one app: ``settings`` keys use dots as in the INI."""
    values = {
        "beaker.session.secret": SECRET,
        "beaker.session.type": "sqlite",  # the default store
        "beaker.session.data_dir": str(directory / "sessions"),
    }
    values.update({k: None if v is None else str(v) for k, v in settings.items()})
    lines = ["[app:main]", f"use = {use}"] + [f"{k} = {v}" for k, v in values.items() if v is not None]
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Server:
    """A running server process."""

    process: subprocess.Popen[Any]
    port: int
    log: Path
    ports: list[int] = field(default_factory=list)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child: unbuffered, the checkout on its path, ``extra`` added."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONWARNINGS", None)
    return env


@contextlib.contextmanager
def serve(ini: Path, *, extra_args: tuple[str, ...] = ()) -> Iterator[Server]:
    """``wsgisession serve INI --port 0``; the port is read from its log."""
    log = ini.with_suffix(f".{time.monotonic_ns()}.log")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "wsgisession"), "serve", str(ini), "--port", "0", *extra_args],
            stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT,
        )
    server = Server(process=process, port=0, log=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            match = re.search(r"on http://127\.0\.0\.1:(\d+)/", server.output())
            if match:
                server.port = int(match.group(1))
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("wsgisession serve did not start:\n" + server.output())
            time.sleep(0.05)
        try:
            yield server
        except BaseException:  # the test failed while the server ran: its log goes to the report
            sys.stderr.write(f"--- the server's log, last 4000 characters ---\n{server.output()[-4000:]}\n")
            raise
    finally:
        server.stop()


@contextlib.contextmanager
def gunicorn(ini: Path, *, workers: int = 1, extra_args: tuple[str, ...] = (),
             host: str = "127.0.0.1") -> Iterator[Server]:
    """gunicorn with our gevent websocket worker, ``--paste INI``, on a free port of ``host``."""
    port = free_port(host)
    log = ini.with_suffix(f".gunicorn.{time.monotonic_ns()}.log")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                str(BIN / "gunicorn"), "--paste", str(ini), "-c", str(ROOT / "conf" / "gunicorn.conf.py"),
                "-b", f"{host}:{port}", "-w", str(workers), "--no-control-socket", *extra_args,
            ],
            stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT,
        )
    server = Server(process=process, port=port, log=log, host=host)
    try:
        wait_for_port(port, timeout=30, process=process, host=host)
        deadline = time.monotonic() + 30
        while server.output().count("Booting worker") < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            yield server
        except BaseException:  # the test failed while the server ran: its log goes to the report
            sys.stderr.write(f"--- the server's log, last 4000 characters ---\n{server.output()[-4000:]}\n")
            raise
    finally:
        server.stop()


@contextlib.contextmanager
def gunicorn_app(app_uri: str, directory: Path, *, env: dict[str, str], workers: int = 1) -> Iterator[Server]:
    """``gunicorn -c conf/gunicorn.conf.py APP_URI`` (a module's app, or a factory call), run in ``directory``."""
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"wsgisession-gunicorn.{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "conf" / "gunicorn.conf.py"), "-b", f"127.0.0.1:{port}",
             "-w", str(workers), "--no-control-socket", app_uri],
            stdout=out, stderr=subprocess.STDOUT, env=child_env(**env), cwd=directory,
        )
    server = Server(process=process, port=port, log=log)
    try:
        deadline = time.monotonic() + 30
        while server.output().count("Booting worker") < workers:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start:\n" + server.output())
            time.sleep(0.05)
        wait_for_port(port, process=process)
        try:
            yield server
        except BaseException:  # the test failed while the server ran: its log goes to the report
            sys.stderr.write(f"--- the server's log, last 4000 characters ---\n{server.output()[-4000:]}\n")
            raise
    finally:
        server.stop()


def redis_binary(name: str = "redis-server") -> str:
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError(f"{name} is not installed (apt-get install {name}; .ci/run does it)")
    return binary


@dataclass
class Certificates:
    """A test CA and a server certificate it signed for 127.0.0.1 (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def make_certificates(directory: Path) -> Certificates:
    """A CA and a server certificate for IP 127.0.0.1, made with openssl (EC P-256, valid one day)."""
    openssl = redis_binary("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run([openssl, *args], check=True, capture_output=True, cwd=directory)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=wsgisession test CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "1", "-extfile", "san.ext")
    return Certificates(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")


class Redis:
    """A private redis-server on 127.0.0.1 that a test can stop and start again.

    ``persistent`` keeps an append-only file in ``directory``, so the server
    finds its data again after a restart on the same port. ``tls`` serves TLS
    only (``rediss://``), ``unix`` a Unix socket only (``unix://``); ``config``
    adds lines to its configuration file (``user ...``, ``replicaof ...``).
    """

    def __init__(self, directory: Path, *, persistent: bool = False, tls: Certificates | None = None,
                 unix: bool = False, config: tuple[str, ...] = ()) -> None:
        self.binary = redis_binary()
        self.directory = directory
        self.persistent = persistent
        self.tls = tls
        self.unix = unix
        self.config = config
        self.port = free_port()
        self.socket_path = directory / f"redis-{self.port}.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.unix:
            return f"unix://{self.socket_path}?db=0"
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def conf(self) -> list[str]:
        lines = ["bind 127.0.0.1", 'save ""', f"dir {self.directory}", f"pidfile {self.directory}/redis-{self.port}.pid"]
        lines += ["appendonly yes", "appendfsync always"] if self.persistent else ["appendonly no"]
        lines.append(f"appendfilename appendonly-{self.port}.aof")
        lines.append(f"appenddirname appendonly-{self.port}")
        if self.unix:
            lines += ["port 0", f"unixsocket {self.socket_path}", "unixsocketperm 700"]
        elif self.tls:
            lines += ["port 0", f"tls-port {self.port}", f"tls-cert-file {self.tls.cert}",
                      f"tls-key-file {self.tls.key}", f"tls-ca-cert-file {self.tls.ca}", "tls-auth-clients no",
                      "tls-replication yes"]
        else:
            lines.append(f"port {self.port}")
        return lines + list(self.config)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / f"redis-{self.port}.conf"
        conf.write_text("\n".join(self.conf()) + "\n")
        self.process = subprocess.Popen([self.binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.unix:
            deadline = time.monotonic() + 15
            while not self.socket_path.exists():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not open {self.socket_path}")
                time.sleep(0.05)
        else:
            wait_for_port(self.port, process=self.process)

    def kill(self) -> None:
        """SIGKILL: as a machine that dies (nothing flushed, no goodbye to replicas)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class Sentinel:
    """A primary, a replica and one redis-sentinel watching them (quorum 1), on 127.0.0.1.

    ``url`` is the ``redis+sentinel://`` URL of service ``mymaster``. The
    sentinel calls the primary down after 1 s without an answer and promotes
    the replica.
    """

    SERVICE = "mymaster"

    def __init__(self, directory: Path, *, password: str | None = None, sentinel_password: str | None = None,
                 tls: Certificates | None = None) -> None:
        """``password``: the primary's and the replica's (``requirepass``); ``sentinel_password``: the sentinel's own;
        ``tls``: all three serve TLS only (and replicate and watch over TLS)."""
        self.directory = directory
        self.password = password
        self.sentinel_password = sentinel_password
        self.tls = tls
        config: tuple[str, ...] = ("repl-diskless-sync-delay 0",)  # the default waits 5 s for more replicas
        if password:
            config += (f"requirepass {password}", f"masterauth {password}")
        self.primary = Redis(directory / "primary", config=config, tls=tls)
        self.replica = Redis(directory / "replica", config=(f"replicaof 127.0.0.1 {self.primary.port}", *config),
                             tls=tls)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis+sentinel://{auth}127.0.0.1:{self.port}/0/{self.SERVICE}"

    def start(self) -> None:
        binary = redis_binary("redis-sentinel")  # before the servers it watches: none left running without it
        try:
            self._start(binary)
        except BaseException:
            self.stop()
            raise

    def _start(self, binary: str) -> None:
        self.primary.start()
        self.replica.start()
        # synced first: the primary then lists the replica at the sentinel's first INFO (else its next, 10 s on)
        self.wait_for(self.replica_in_sync, "the replica's first sync")
        conf = self.directory / "sentinel.conf"
        listen = [f"port {self.port}"]
        if self.tls:
            listen = ["port 0", f"tls-port {self.port}", f"tls-cert-file {self.tls.cert}", f"tls-key-file {self.tls.key}",
                      f"tls-ca-cert-file {self.tls.ca}", "tls-auth-clients no", "tls-replication yes"]
        conf.write_text("\n".join([
            *listen, "bind 127.0.0.1", f"dir {self.directory}",
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 1",
            f"sentinel down-after-milliseconds {self.SERVICE} 1000",
            f"sentinel failover-timeout {self.SERVICE} 10000",
            f"sentinel parallel-syncs {self.SERVICE} 1",
            *([f"sentinel auth-pass {self.SERVICE} {self.password}"] if self.password else []),
            *([f"requirepass {self.sentinel_password}"] if self.sentinel_password else []),
        ]) + "\n")
        self.process = subprocess.Popen([binary, str(conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)
        # once in 2 clean-clone CI runs, a sentinel started with the replica still syncing had not listed it in 30 s
        self.wait_for(lambda: self.replicas_seen() >= 1, "the sentinel to see the replica", timeout=60.0)

    def replica_in_sync(self) -> bool:
        import redis

        with redis.Redis("127.0.0.1", self.replica.port, socket_timeout=2, password=self.password,
                         **self.client_tls()) as client:
            return bool(client.info("replication").get("master_link_status") == "up")

    def ask(self, *command: str) -> Any:
        import redis

        with redis.Redis("127.0.0.1", self.port, socket_timeout=2, password=self.sentinel_password,
                         **self.client_tls()) as client:
            return client.execute_command(*command)

    def client_tls(self) -> dict[str, Any]:
        """redis-py's options to reach these servers (TLS checked against the test CA, if they serve TLS)."""
        return {"ssl": True, "ssl_ca_certs": str(self.tls.ca)} if self.tls else {}

    def replicas_seen(self) -> int:
        return len([r for r in self.ask("SENTINEL", "REPLICAS", self.SERVICE) if b"s_down" not in r.get("flags", b"")])

    def primary_port(self) -> int:
        return int(self.ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE)[1])

    def wait_for(self, predicate: Any, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate():
                    return
            except Exception:  # noqa: BLE001 - a server in the middle of a switch
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout}s for {what}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
        self.replica.stop()
        self.primary.stop()


class Cluster:
    """A Redis Cluster on 127.0.0.1, made by ``redis-cli --cluster create``: three primaries by default, and
    ``replicas`` replicas of each (``size`` counts them all)."""

    def __init__(self, directory: Path, *, size: int = 3, replicas: int = 0, config: tuple[str, ...] = (),
                 admin: str = "") -> None:
        self.replicas = replicas
        self.nodes = [Redis(directory / f"node{i}") for i in range(size)]
        for node in self.nodes:
            node.config = ("cluster-enabled yes", f"cluster-config-file nodes-{node.port}.conf",
                           "cluster-node-timeout 2000", f"cluster-port {free_port()}", *config)
        self.admin = admin  # user:password for redis-cli and the checks, when the default user is off

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> None:
        import redis

        for node in self.nodes:
            node.start()
        auth = ["--user", self.admin.split(":")[0], "--pass", self.admin.split(":")[1]] if self.admin else []
        subprocess.run([redis_binary("redis-cli"), *auth, "--cluster", "create",
                        *[f"127.0.0.1:{node.port}" for node in self.nodes], "--cluster-replicas", str(self.replicas),
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        user, _, password = self.admin.partition(":")
        for node in self.nodes:
            with redis.Redis(port=node.port, username=user or None, password=password or None) as client:
                while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                    if time.monotonic() > deadline:
                        raise TimeoutError("the cluster did not come up")
                    time.sleep(0.1)

    def serving(self, key: str, *, ask: int | None = None) -> tuple[int, int | None]:
        """The ports of the primary of ``key``'s slot and of its first replica, as the node on port ``ask`` (by
        default the first) sees them."""
        import redis

        user, _, password = self.admin.partition(":")
        with redis.Redis(port=ask or self.nodes[0].port, username=user or None, password=password or None,
                         socket_timeout=2) as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, primary, *replicas in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(primary[1]), int(replicas[0][1]) if replicas else None
        raise AssertionError(f"no node serves slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def redis_server(directory: Path, *, persistent: bool = False) -> Iterator[str]:
    """A private redis-server on a free port; yields its URL."""
    redis = Redis(directory, persistent=persistent)
    redis.start()
    try:
        yield redis.url
    finally:
        redis.stop()



@contextlib.contextmanager
def rabbitmq_server(directory: Path) -> Iterator[str]:
    """A private RabbitMQ (Debian's rabbitmq-server) on free ports of 127.0.0.1; yields its amqp:// URL.

    Its node, distribution and epmd ports are all its own; its files are in a
    scratch directory of its own (owned by the ``rabbitmq`` user when run as
    root: the server's script drops to it, and pytest's directories are private
    to root), its log in ``directory``. The guest user may log in from localhost.
    """
    binary = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
    if not os.path.exists(binary):
        raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server; .ci/run does it)")
    home = Path(tempfile.mkdtemp(prefix="wsgisession-rabbitmq-"))
    home.chmod(0o755)
    (home / "mnesia").mkdir(parents=True, exist_ok=True)
    (home / "log").mkdir(exist_ok=True)
    (home / "plugins").write_text("[].")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "rabbitmq", str(home)], check=True)
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    env = dict(os.environ, HOME=str(home), RABBITMQ_NODE_PORT=str(port), RABBITMQ_DIST_PORT=str(dist_port),
               ERL_EPMD_PORT=str(epmd_port), RABBITMQ_NODENAME=f"wstest{port}@localhost",
               RABBITMQ_MNESIA_BASE=str(home / "mnesia"), RABBITMQ_LOG_BASE=str(home / "log"),
               RABBITMQ_ENABLED_PLUGINS_FILE=str(home / "plugins"),
               RABBITMQ_FEATURE_FLAGS_FILE=str(home / "feature_flags"), RABBITMQ_PID_FILE=str(home / "pid"),
               RABBITMQ_NODE_IP_ADDRESS="127.0.0.1")
    log = directory / "rabbitmq.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([binary], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        try:
            wait_for_port(port, timeout=60, process=process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"rabbitmq-server did not start: {exc}\n{log.read_text(errors='replace')[-2000:]}") from exc
        yield f"amqp://guest:guest@127.0.0.1:{port}//"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        # run as root, the script starts the node through su (another session): find it by its epmd port
        subprocess.run(["pkill", "-TERM", "-f", f"epmd_port {epmd_port}( |$)"], check=False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and subprocess.run(
                ["pgrep", "-f", f"epmd_port {epmd_port}( |$)"], stdout=subprocess.DEVNULL, check=False).returncode == 0:
            time.sleep(0.1)
        subprocess.run(["pkill", "-KILL", "-f", f"epmd_port {epmd_port}( |$)"], check=False)
        epmd = shutil.which("epmd")
        if epmd is not None:  # it outlives the node, daemonized on its own port
            subprocess.run([epmd, "-kill"], env=dict(os.environ, ERL_EPMD_PORT=str(epmd_port)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False)
        shutil.rmtree(home, ignore_errors=True)


def self_signed_certificate(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A certificate for ``name`` (also its own CA: clients trust it by its file) and its key, made by openssl."""
    certificate, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=60,
    )
    return certificate, key


NGINX_CONF = ROOT / "conf" / "nginx.conf"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def nginx_site(backends: list[str], *, port: int, http_port: int, certificate: Path, key: Path,
               name: str = "localhost") -> str:
    """The shipped ``conf/nginx.conf`` with its EDIT places filled in: these backends, loopback ports, this certificate."""
    text = NGINX_CONF.read_text()
    v6 = _ipv6_loopback()

    def edit(pattern: str, replacement: str, count: int) -> None:
        nonlocal text
        text, found = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert found == count, f"conf/nginx.conf changed: {pattern!r} found {found} times, not {count}"

    servers = "".join(f"    server {backend};\n" for backend in backends)
    edit(r"^(    server \S+:\d+;\n)+", servers, 1)
    edit(r"^(\s*)listen 80 ", rf"\g<1>listen 127.0.0.1:{http_port} ", 1)
    edit(r"^(\s*)listen \[::\]:80 ", rf"\g<1>listen [::1]:{http_port} " if v6 else r"\g<1># ", 1)
    edit(r"^(\s*)listen 443 ", rf"\g<1>listen 127.0.0.1:{port} ", 2)
    edit(r"^(\s*)listen \[::\]:443 ", rf"\g<1>listen [::1]:{port} " if v6 else r"\g<1># ", 2)
    edit(r"server_name example\.com;", f"server_name {name};", 1)
    edit(r"ssl_certificate \S+;", f"ssl_certificate {certificate};", 1)
    edit(r"ssl_certificate_key \S+;", f"ssl_certificate_key {key};", 1)
    return text


@dataclass
class Nginx:
    """A running nginx: its https URL, its CA file, its logs."""

    process: subprocess.Popen[Any]
    url: str
    http_url: str
    ca: Path
    error_log: Path
    access_log: Path

    def routes(self) -> list[dict[str, str]]:
        """The access log: one ``{"method", "uri", "sid", "route", "upstream", "status"}`` per request (``-``: empty)."""
        lines = self.access_log.read_text(errors="replace").splitlines()
        return [dict(field.split("=", 1) for field in line.split("\t")) for line in lines if line]


#: the access log of the test's nginx: which backend served each request, by Engine.IO sid and routing cookie
NGINX_LOG_FORMAT = "method=$request_method\turi=$uri\tsid=$arg_sid\troute=$cookie_wsgisession_route\t" \
                   "upstream=$upstream_addr\tstatus=$status"


@contextlib.contextmanager
def nginx(directory: Path, backends: list[str], *, name: str = "localhost") -> Iterator[Nginx]:
    """Debian's nginx in the foreground with ``conf/nginx.conf`` in front of ``backends`` (``host:port``).

    Its https port and its http (redirect) port are free ports of 127.0.0.1
    (and ::1 where it exists, as ``name`` may resolve to either); its
    certificate is made for ``name``. Its logs are in ``directory``; its pid
    and temporary files are in a scratch prefix of its own, readable by the
    unprivileged user its workers run as when the test runs as root.
    """
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        raise RuntimeError("nginx is not installed (apt-get install nginx; .ci/run does it)")
    prefix = Path(tempfile.mkdtemp(prefix="wsgisession-nginx-"))
    prefix.chmod(0o755)
    certificate, key = self_signed_certificate(directory, name)
    port, http_port = free_port(), free_port()
    site = prefix / "site.conf"
    site.write_text(nginx_site(backends, port=port, http_port=http_port, certificate=certificate, key=key, name=name))
    error_log, access_log = directory / "nginx-error.log", directory / "nginx-access.log"
    temp_paths = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                                  "uwsgi", "scgi"))
    main = prefix / "nginx.conf"
    main.write_text(f"""daemon off;
{"user nobody nogroup;" if os.geteuid() == 0 else ""}
worker_processes 2;
pid {prefix / "nginx.pid"};
error_log {error_log} info;
events {{
    worker_connections 1024;
}}
http {{
{temp_paths}
    log_format routed "{NGINX_LOG_FORMAT}";
    access_log {access_log} routed;
    include {site};
}}
""")
    with open(directory / "nginx-stderr.log", "wb") as out:
        process = subprocess.Popen([binary, "-p", str(prefix), "-c", str(main), "-e", str(error_log)],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_port(port, process=process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"nginx did not start: {exc}\n{error_log.read_text(errors='replace')[-2000:]}") from exc
        yield Nginx(process=process, url=f"https://{name}:{port}", http_url=f"http://{name}:{http_port}",
                    ca=certificate, error_log=error_log, access_log=access_log)
    finally:
        process.terminate()  # nginx's fast shutdown
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(prefix, ignore_errors=True)
