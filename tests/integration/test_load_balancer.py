"""Several hosts behind a real load balancer: Debian's nginx with the shipped ``conf/nginx.conf``.

Two "hosts" (127.0.0.1 and 127.0.0.2), each running two gunicorn masters of
``conf/production.ini`` with one worker each, as its comment says, on one
redis-server; nginx in front on https (a certificate made by openssl for
``localhost``), its config the shipped file with only its EDIT places filled
in. Its access log says which backend served each request, so the tests pick a
backend by the routing cookie nginx sets, and check that every request of a
Socket.IO connection reached one backend. Clients: Python requests for HTTP,
the official JavaScript client (node) with its default options (polling, then
upgrade) for sockets, a bare Engine.IO polling client whose first request is the
handshake, and headless Chromium, whose own cookie jar keeps the routing cookie.
A smaller cluster (one master per host) loses a backend; single gunicorn masters
show the warning of a master whose workers would share polling clients.
"""
from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from tests.browser import Browser
from tests.helpers import LAB, ROOT, SECRET, wait_until
from tests.jsclient import JsClient, node_binary
from tests.servers import Nginx, Server, gunicorn, nginx, write_ini

pytestmark = [pytest.mark.redis, pytest.mark.node, pytest.mark.slow]

HOSTS = ("127.0.0.1", "127.0.0.2")
MASTERS_PER_HOST = 2
ROUTE = "wsgisession_route"
SESSION = "counter.sid"


@dataclass
class Cluster:
    proxy: Nginx
    backends: list[Server]
    routes: dict[str, str] = field(default_factory=dict)  # backend "host:port" -> a routing cookie nginx sends there

    def address(self, backend: Server) -> str:
        return f"{backend.host}:{backend.port}"

    def route(self, backend: Server) -> str:
        return self.routes[self.address(backend)]

    def get(self, path: str, *, backend: Server, session: str | None = None, method: str = "GET",
            **kwargs: Any) -> requests.Response:
        """``GET path`` (or ``method``) through nginx with the routing cookie of ``backend`` (and a session cookie)."""
        cookie = f"{ROUTE}={self.route(backend)}" + (f"; {SESSION}={session}" if session else "")
        return requests.request(method, self.proxy.url + path, headers={"Cookie": cookie}, verify=self.proxy.ca,
                                timeout=15, **kwargs)

    def post(self, path: str, *, backend: Server, session: str | None = None, **kwargs: Any) -> requests.Response:
        """``POST path``: the counter's routes that change the session take POST only."""
        return self.get(path, backend=backend, session=session, method="POST", **kwargs)

    def login(self, user: str, *, backend: Server) -> str:
        """Log in through nginx on ``backend``; the session cookie's value (the tests send cookies by header)."""
        response = self.post("/login", backend=backend, params={"user": user})
        response.raise_for_status()
        return str(response.cookies[SESSION])

    def socket(self, node: str, session: str, *, backend: Server, transport: str = "upgrade") -> JsClient:
        """The official client through nginx, its cookies those a browser routed to ``backend`` would send."""
        cookie = f"{ROUTE}={self.route(backend)}; {SESSION}={session}"
        return JsClient(node, self.proxy.url, cookie=cookie, transport=transport, ca=self.proxy.ca)

    def upstreams(self, route: str) -> set[str]:
        """Every backend that served a request carrying this routing cookie."""
        return {row["upstream"] for row in self.proxy.routes() if row["route"] == route}


@pytest.fixture(scope="module")
def node() -> str:
    return node_binary()


@contextlib.contextmanager
def start_cluster(directory: Path, redis_url: str, *, masters_per_host: int, use: str | None = None) -> Iterator[Cluster]:
    """``conf/production.ini`` on ``masters_per_host`` one-worker masters per host, nginx in front.

    ``use``: another app than the counter example, with every other line of the INI.
    """
    ini = directory / "conf" / "production.ini"
    ini.parent.mkdir()
    text = (ROOT / "conf" / "production.ini").read_text()
    if use is not None:
        text, found = re.subn(r"^use = .*$", f"use = {use}", text, count=1, flags=re.MULTILINE)
        assert found == 1
    ini.write_text(text)
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(pytest.MonkeyPatch.context())
        env.setenv("SESSION_SECRET", SECRET)
        env.setenv("REDIS_URL", redis_url)
        backends = [stack.enter_context(gunicorn(ini, workers=1, host=host))
                    for host in HOSTS for _ in range(masters_per_host)]
        proxy = stack.enter_context(nginx(directory, [f"{b.host}:{b.port}" for b in backends]))
        found = Cluster(proxy=proxy, backends=backends)
        for n in range(200):  # routing cookies until every backend has one
            route = f"r{n}"
            requests.get(proxy.url + "/n", headers={"Cookie": f"{ROUTE}={route}"}, verify=proxy.ca, timeout=10)
            wait_until(lambda: bool(found.upstreams(route)), timeout=5)  # nginx logs after it answered
            (upstream,) = found.upstreams(route)
            found.routes.setdefault(upstream, route)
            if len(found.routes) == len(backends):
                break
        assert len(found.routes) == len(backends), found.routes
        yield found
        for backend in backends:
            assert "Traceback" not in backend.output(), backend.output()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Cluster]:
    with start_cluster(tmp_path_factory.mktemp("load-balancer"), redis_url, masters_per_host=MASTERS_PER_HOST) as found:
        yield found


def host_a_and_b(cluster: Cluster) -> tuple[Server, Server]:
    """The first backend of each host."""
    return cluster.backends[0], cluster.backends[MASTERS_PER_HOST]


@pytest.mark.parametrize("transport", ["upgrade", "polling"])
def test_default_js_client_keeps_its_session_across_hosts(cluster: Cluster, node: str, transport: str) -> None:
    a, b = host_a_and_b(cluster)
    assert a.host != b.host
    session = cluster.login(f"ann-{transport}", backend=a)
    assert cluster.post("/incr", backend=a, session=session).text.strip() == "1"
    expected = 1
    for backend in [b, *cluster.backends]:  # host B first, then every backend of both hosts
        with cluster.socket(node, session, backend=backend, transport=transport) as client:
            client.connected()
            assert client.next("open")["transport"] == "polling"
            assert client.call("whoami") == f"ann-{transport}"  # the login on host A, seen on this backend
            expected += 1
            assert client.call("incr") == expected
            if transport == "upgrade":
                assert client.next("upgrade")["transport"] == "websocket"
                expected += 1
                assert client.call("incr") == expected
            # HTTP on host A sees the socket's write on this backend; the socket sees HTTP's
            assert cluster.post("/incr", backend=a, session=session).text.strip() == str(expected + 1)
            expected += 2
            assert client.call("incr") == expected
        # every request of this client's connection reached its own backend
        assert cluster.upstreams(cluster.route(backend)) == {cluster.address(backend)}


def engineio_polls(cluster: Cluster, session: str, *, rounds: int, keep_route: bool) -> list[int]:
    """A bare Engine.IO polling connection through nginx, with no routing cookie at first: its statuses.

    ``keep_route``: send back the routing cookie the handshake's answer set, as
    a browser does; otherwise every request is routed anew, as for a client
    that keeps no cookies.
    """
    origin = {"Origin": cluster.proxy.url}
    cookie = f"{SESSION}={session}"
    url = cluster.proxy.url + "/socket.io/"

    def request(method: str, sid: str | None = None, body: str | None = None) -> requests.Response:
        params = {"EIO": "4", "transport": "polling", **({"sid": sid} if sid else {})}
        return requests.request(method, url, params=params, data=body, headers={"Cookie": cookie, **origin},
                                verify=cluster.proxy.ca, timeout=40)

    handshake = request("GET")
    assert handshake.status_code == 200, handshake.text
    sid = json.loads(handshake.text[1:])["sid"]
    if keep_route:
        cookie += f"; {ROUTE}={handshake.cookies[ROUTE]}"  # set by nginx on the first answer
    statuses = [handshake.status_code]
    answer = request("POST", sid, "40")
    statuses.append(answer.status_code)
    for n in range(rounds):
        if answer.status_code != 200:
            break
        answer = request("GET", sid)
        statuses.append(answer.status_code)
        if answer.status_code != 200:
            break
        if n:
            assert answer.text == f'43{n - 1}[{{"n":{n - 1}}}]', answer.text  # the echo of the last round
        else:
            assert answer.text.startswith("40{"), answer.text  # Socket.IO's connect
        answer = request("POST", sid, f'42{n}["echo",{{"n":{n}}}]')
        statuses.append(answer.status_code)
    return statuses


def test_a_polling_client_whose_first_request_is_the_handshake_stays_on_one_backend(cluster: Cluster) -> None:
    a, _ = host_a_and_b(cluster)
    session = cluster.login("first-contact", backend=a)
    statuses = engineio_polls(cluster, session, rounds=10, keep_route=True)
    assert statuses == [200] * 22


def test_without_the_routing_cookie_polling_breaks_across_backends(cluster: Cluster) -> None:
    # the control: these backends are distinct Engine.IO processes (p = 4**-10 that this passes by chance)
    a, _ = host_a_and_b(cluster)
    session = cluster.login("no-cookies", backend=a)
    statuses = engineio_polls(cluster, session, rounds=10, keep_route=False)
    assert statuses[-1] == 400, statuses  # Engine.IO's "Invalid session": another backend


def test_logout_on_one_host_ends_sockets_on_the_other_within_a_second(cluster: Cluster, node: str) -> None:
    a, b = host_a_and_b(cluster)
    session = cluster.login("bob", backend=a)
    with contextlib.ExitStack() as stack:
        clients = {}
        for backend in cluster.backends:
            for transport in ("upgrade", "polling"):
                client = stack.enter_context(cluster.socket(node, session, backend=backend, transport=transport))
                client.connected()
                assert client.call("whoami") == "bob"
                if transport == "upgrade":
                    client.next("upgrade")
                clients[(cluster.address(backend), transport)] = client
        started = time.monotonic()
        cluster.post("/logout", backend=a, session=session).raise_for_status()
        delays = {}
        for where, client in clients.items():
            ended = client.next("event")
            assert (ended["event"], ended["args"]) == ("session_ended", [{"reason": "logout"}]), where
            assert client.next("disconnect")["reason"] == "io server disconnect"
            delays[where] = ended["at"] - started
        print(f"\nlogout on {cluster.address(a)} -> session_ended: "
              + ", ".join(f"{host} {transport} {delay * 1000:.0f} ms" for (host, transport), delay in delays.items()))
        assert max(delays.values()) < 1.0, delays


@dataclass
class Tally:
    acked: dict[str, int] = field(default_factory=lambda: {"http": 0, "socket": 0})
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, kind: str) -> None:
        with self.lock:
            self.acked[kind] += 1


def test_no_update_is_lost_under_mixed_load_across_hosts(cluster: Cluster, node: str) -> None:
    a, _ = host_a_and_b(cluster)
    session = cluster.login("load", backend=a)
    tally = Tally()
    deadline = time.monotonic() + 4.0

    def http_client(backend: Server) -> None:
        with requests.Session() as http:  # keep-alive to nginx, as a browser
            cookie = f"{ROUTE}={cluster.route(backend)}; {SESSION}={session}"
            while time.monotonic() < deadline:
                response = http.post(cluster.proxy.url + "/incr", headers={"Cookie": cookie}, verify=cluster.proxy.ca,
                                    timeout=15)
                if response.status_code == 200:
                    tally.ack("http")
                else:
                    tally.failures.append(f"http {response.status_code} {response.text[:100]!r}")

    def socket_client(client: JsClient) -> None:
        while time.monotonic() < deadline:
            try:
                answer = client.call("incr")
            except AssertionError as exc:
                tally.failures.append(f"socket {exc}"[:300])
                return
            if isinstance(answer, int):
                tally.ack("socket")
            else:
                tally.failures.append(f"socket ack {answer!r}")

    with contextlib.ExitStack() as stack:
        sockets = []
        for backend in cluster.backends:
            client = stack.enter_context(cluster.socket(node, session, backend=backend))
            client.connected()
            sockets.append(client)
        threads = [threading.Thread(target=http_client, args=(backend,)) for backend in cluster.backends]
        threads += [threading.Thread(target=socket_client, args=(client,)) for client in sockets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    final = int(cluster.get("/n", backend=a, session=session).text)
    print(f"\nmixed load through nginx: {tally.acked} acknowledged increments, the counter is {final}")
    assert not tally.failures, tally.failures
    assert tally.acked["http"] > 20 and tally.acked["socket"] > 20
    assert final == sum(tally.acked.values())
    errors = [line for line in cluster.proxy.error_log.read_text().splitlines()
              if any(f"[{level}]" in line for level in ("error", "crit", "alert", "emerg"))]
    assert not errors, errors


def test_plain_http_is_redirected_to_https(cluster: Cluster) -> None:
    response = requests.get(cluster.proxy.http_url + "/n?x=1", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://localhost/n?x=1"


def test_origin_check_behind_the_proxy(cluster: Cluster, node: str) -> None:
    a, b = host_a_and_b(cluster)
    session = cluster.login("eve", backend=a)
    for transport in ("polling", "websocket"):
        cookie = f"{ROUTE}={cluster.route(b)}; {SESSION}={session}"
        with JsClient(node, cluster.proxy.url, cookie=cookie, origin="https://evil.example", transport=transport,
                      ca=cluster.proxy.ca) as client:
            refused = client.next("connect", "connect_error", "timeout")
        assert (refused["type"], refused.get("message")) == ("connect_error", "bad_origin"), refused


def test_a_stopped_backend_sends_its_clients_to_another_with_their_session(
        tmp_path: Path, redis_url: str, node: str) -> None:
    with start_cluster(tmp_path, redis_url, masters_per_host=1) as small:
        a, b = small.backends
        session = small.login("cat", backend=b)
        route = small.route(b)
        with JsClient(node, small.proxy.url, cookie=f"{ROUTE}={route}; {SESSION}={session}", transport="upgrade",
                      ca=small.proxy.ca, reconnection=True) as client:
            client.connected()
            assert client.call("incr") == 1
            client.next("upgrade")
            stopped = time.monotonic()
            assert b.stop() == 0  # a graceful stop: it drops its connections once its events are done
            back = client.next("connect", timeout=15)
            assert client.next("disconnect", timeout=1)["reason"] == "transport close"
            print(f"\nhost B stopped -> the client is back through nginx after {back['at'] - stopped:.2f} s")
            assert client.call("whoami") == "cat" and client.call("incr") == 2  # on host A, the same session
        served = [row["upstream"] for row in small.proxy.routes() if row["route"] == route]
        # nginx sent the cookie's requests on to the live backend (after trying the stopped one, while it was new)
        assert served[-1].split(", ")[-1] == small.address(a), served
        assert small.get("/n", backend=b, session=session).text.strip() == "2"


# -- a real browser: its own cookie jar keeps the routing cookie --------------
CONNECT = """async () => {
  const socket = io();  // the client's defaults: polling, then upgrade
  wsgisession.keepCookie(socket);
  window.socket = socket;
  return await new Promise((resolve) => {
    socket.on("connect", () => resolve({connected: true, transport: socket.io.engine.transport.name}));
    socket.on("connect_error", (err) => resolve({connected: false, error: err.message}));
  });
}"""
UPGRADED = """async () => socket.io.engine.transport.name === "websocket" ? "websocket"
  : await new Promise((resolve) => socket.io.engine.once("upgrade", (t) => resolve(t.name)))"""
EMIT = "async ([event, ...args]) => await socket.timeout(10000).emitWithAck(event, ...args)"
FETCH = """async (url) => {
  const response = await fetch(url, {credentials: "same-origin"});
  return {status: response.status, body: await response.json()};
}"""


@pytest.mark.browser
def test_a_browser_page_behind_nginx_keeps_one_backend_and_its_cookies(tmp_path: Path, redis_url: str) -> None:
    with start_cluster(tmp_path, redis_url, masters_per_host=1, use=LAB) as lab, \
            Browser.launch(ignore_https_errors=True) as browser:
        context = browser.context()
        tab = context.tab()
        assert tab.goto(lab.proxy.url + "/page") == 200  # the page's answer sets the routing cookie
        route = context.cookie(lab.proxy.url, ROUTE)
        assert route is not None and route["secure"] and route["httpOnly"], route
        assert tab.run(FETCH, "/set?who=ann")["status"] == 200
        assert tab.run(CONNECT) == {"connected": True, "transport": "polling"}
        assert tab.run(UPGRADED) == "websocket"
        assert tab.run(EMIT, ["get"])["who"] == "ann"
        before = context.cookie(lab.proxy.url, SESSION)
        assert tab.run(EMIT, ["login", "bob"])["user"] == "bob"  # rotated over the socket
        tab.run("async () => await wsgisession.cookieSettled()")  # the page's POST of the exchange token
        after = context.cookie(lab.proxy.url, SESSION)
        assert before is not None and after is not None and after["value"] != before["value"]
        assert tab.run(FETCH, "/get")["body"]["user"] == "bob"  # HTTP knows the new id
        assert tab.run(EMIT, ["get"])["user"] == "bob"
        assert browser.errors() == {"page_errors": [], "console_errors": []}
        # its fetches, polls, upgrade and cookie exchange all on one backend: the one that served the page,
        # which came without the cookie and was routed by the value its answer set
        (backend,) = lab.upstreams(route["value"])
        paths = {row["uri"] for row in lab.proxy.routes() if row["route"] == route["value"]}
        assert {"/set", "/get", "/socket.io/", "/wsgisession/cookie"} <= paths
        (first,) = [row for row in lab.proxy.routes() if row["uri"] == "/page"]
        assert (first["route"], first["upstream"]) == ("-", backend)  # nginx logs an empty value as -


# -- what nginx cannot fix: one master's workers share its socket ---------
WARNING = "workers share one listening socket and Socket.IO accepts the polling transport"


@pytest.mark.parametrize(("workers", "transports", "warned"), [(2, None, True), (2, "websocket", False), (1, None, False)],
                         ids=["2 workers, polling", "2 workers, websocket only", "1 worker"])
def test_a_master_with_several_workers_and_polling_warns_once(tmp_path: Path, workers: int, transports: str | None,
                                                              warned: bool) -> None:
    ini = write_ini(tmp_path, **{"socketio.engineio_logger": "true", "socketio.transports": transports})
    with gunicorn(ini, workers=workers) as server:
        try:
            wait_until(lambda: server.output().count("Server initialized for gevent") >= workers, timeout=30)
        except AssertionError:
            raise AssertionError(f"{workers} workers did not all load the app:\n{server.output()[-3000:]}") from None
        time.sleep(0.3)  # the check follows the app's loading
    log = server.output()
    assert log.count(WARNING) == (1 if warned else 0), log
    if warned:
        assert f"{workers} {WARNING}" in log and "conf/nginx.conf" in log
