"""The official socket.io client, with the options people write, in headless Chromium.

Pages are served by the lab app (``tests/apps.py``: ``/page`` loads the client
and ``/wsgisession/client.js`` as README.rst tells users to, and touches no
session); the page of another origin is served by a cookie-less server on
another port of 127.0.0.1 (same site, so the browser does send the cookie).
Each test runs in a fresh browser context (its own cookie jar) and calls
``io()`` in the page exactly as a user's script would.
"""
from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.apps import page
from tests.browser import PLAIN_HOST, Browser, Context, Tab
from tests.helpers import LAB, SECRET
from tests.servers import Redis, Server, gunicorn, serve, write_ini
from wsgisession.cookies import SessionCookie
from wsgisession.ids import Fingerprint, new_session_id
from wsgisession.manager import SessionManager
from wsgisession.records import Record
from wsgisession.store import Store

pytestmark = pytest.mark.browser

# -- what the page runs (the user's calls, and waits around them) ---------
CONNECT = """async ({url, options}) => {
  // the user's line: io() with the options under test (none: the client's defaults)
  const socket = url === null ? (options === null ? io() : io(options)) : io(url, options);
  const first = socket.io.engine.transport.name;  // the transport the client opened with
  wsgisession.keepCookie(socket);
  window.socket = socket;
  window.tokens = [];
  socket.on("session_cookie", (message) => window.tokens.push(message.token));
  return await new Promise((resolve) => {
    const timer = setTimeout(() => resolve({connected: false, error: "no answer in 10 s"}), 10000);
    socket.on("connect", () => { clearTimeout(timer); resolve({connected: true, first, transport: socket.io.engine.transport.name}); });
    socket.on("connect_error", (err) => { clearTimeout(timer); socket.close(); resolve({connected: false, error: err.message}); });
  });
}"""
UPGRADED = """async () => {
  const engine = socket.io.engine;
  if (engine.transport.name === "websocket") return "websocket";
  return await new Promise((resolve) => {
    engine.once("upgrade", (transport) => resolve(transport.name));
    setTimeout(() => resolve(engine.transport.name), 10000);
  });
}"""
EMIT = "async ([event, ...args]) => await socket.timeout(10000).emitWithAck(event, ...args)"
FETCH = """async ([url, init]) => {
  const response = await fetch(url, init || {credentials: "same-origin"});
  const text = await response.text();
  return {status: response.status, body: text ? JSON.parse(text) : null};
}"""
SETTLED = "async () => await wsgisession.cookieSettled()"
CLOSE = "() => { socket.close(); return socket.connected; }"

TRANSPORTS: dict[str, Any] = {
    "default": None,  # io(): polling, then upgrade
    "polling": {"transports": ["polling"]},
    "websocket": {"transports": ["websocket"]},
}


# -- servers ----------------------------------------------------------------
@contextlib.contextmanager
def start(kind: str, directory: Path, **settings: Any) -> Iterator[Server]:
    ini = write_ini(directory, use=LAB, **settings)
    with (serve(ini) if kind == "serve" else gunicorn(ini)) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser.launch() as launched:
        yield launched


@pytest.fixture(scope="module", params=["serve", "gunicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The lab app under ``wsgisession serve`` or gunicorn with our gevent websocket worker."""
    with start(str(request.param), tmp_path_factory.mktemp(str(request.param))) as running:
        yield running


@pytest.fixture(scope="module")
def foreign() -> Iterator[str]:
    """A server of another origin (another port of 127.0.0.1): pages that load the client from ``?base=``."""

    @Request.application  # type: ignore[arg-type]
    def pages(request: Request) -> Response:
        return page(request.args.get("base", ""))

    http = make_server("127.0.0.1", 0, pages, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()


@pytest.fixture
def context(browser: Browser) -> Iterator[Context]:
    opened = browser.context()
    yield opened
    opened.close()


def logged_in_tab(context: Context, server: Server, **values: str) -> Tab:
    """A tab on the server's page whose session HTTP has written (``values``)."""
    tab = context.tab()
    assert tab.goto(server.url + "/page") == 200
    query = "&".join(f"{k}={v}" for k, v in (values or {"who": "ann"}).items())
    assert tab.run(FETCH, ["/set?" + query])["status"] == 200
    return tab


# -- 2. the official client with the options people write -------------------
@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_official_client_joins_the_session_http_wrote(context: Context, server: Server, transport: str) -> None:
    tab = logged_in_tab(context, server, who="ann")
    joined = tab.run(CONNECT, {"url": None, "options": TRANSPORTS[transport]})
    assert joined["connected"], joined
    if transport == "default":
        assert joined["first"] == "polling"
        assert tab.run(UPGRADED) == "websocket"  # polling, then the upgrade
    else:
        assert joined["first"] == joined["transport"] == transport
    # rule 2: the socket reads what HTTP wrote; rule 3: HTTP reads what the socket wrote
    assert tab.run(EMIT, ["get"]) == {"who": "ann"}
    assert tab.run(EMIT, ["set", {"via": transport}]) == {"who": "ann", "via": transport}
    assert tab.run(FETCH, ["/get"])["body"] == {"who": "ann", "via": transport}
    assert context.browser.errors()["page_errors"] == []


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_a_page_of_another_origin_is_refused(context: Context, server: Server, foreign: str, transport: str) -> None:
    logged_in_tab(context, server, who="ann")  # the browser holds a live session cookie for 127.0.0.1
    tab = context.tab()
    assert tab.goto(f"{foreign}/page?base={server.url}") == 200
    options = {**(TRANSPORTS[transport] or {}), "withCredentials": True}  # the cookie goes along
    refused = tab.run(CONNECT, {"url": server.url, "options": options})
    assert not refused["connected"]
    if transport == "websocket":
        assert refused["error"] == "bad_origin"  # the handshake was refused, with its reason
    else:
        # polling: the server grants no CORS to that origin, so the browser itself withholds
        # the handshake's answer from the page (the client never gets a session id to connect with)
        assert refused["error"] == "xhr poll error"
    again = logged_in_tab(context, server, who="ann")  # the session is untouched
    assert again.run(FETCH, ["/get"])["body"] == {"who": "ann"}


@pytest.mark.parametrize("transport", [*TRANSPORTS, "preflight"])
def test_an_allow_listed_origin_with_credentials_works(
    context: Context, foreign: str, tmp_path: Path, transport: str
) -> None:
    with start("serve", tmp_path, **{"wsgisession.allowed_origins": foreign}) as server:
        tab = context.tab()
        tab.goto(server.url + "/set?who=ann")  # HTTP writes the session (a navigation: no Origin check)
        assert tab.goto(f"{foreign}/page?base={server.url}") == 200
        options: dict[str, Any] = {**(TRANSPORTS.get(transport) or {}), "withCredentials": True}
        if transport == "preflight":  # a custom header makes every polling request preflighted
            options.update(transports=["polling"], extraHeaders={"X-Requested-By": "lab"})
        joined = tab.run(CONNECT, {"url": server.url, "options": options})
        assert joined["connected"], joined
        if transport == "default":
            assert tab.run(UPGRADED) == "websocket"
        assert tab.run(EMIT, ["get"]) == {"who": "ann"}
        assert tab.run(EMIT, ["set", {"via": transport}]) == {"who": "ann", "via": transport}
        read = tab.run(FETCH, [server.url + "/get", {"credentials": "include"}])
        assert read == {"status": 200, "body": {"who": "ann", "via": transport}}
        tab.run(CLOSE)
        if transport == "preflight":
            assert '"OPTIONS /socket.io/?EIO=4&transport=polling' in server.output()


def test_a_plain_http_page_of_a_host_that_is_not_loopback_connects(context: Context, tmp_path: Path) -> None:
    """Over plain http to another host the browser sends no Sec-Fetch-Site: the Referer decides."""
    with start("serve", tmp_path) as server:
        base = f"http://{PLAIN_HOST}:{server.port}"
        tab = context.tab()
        assert tab.goto(base + "/page") == 200
        assert tab.run(FETCH, ["/set?who=lan"])["status"] == 200
        joined = tab.run(CONNECT, {"url": None, "options": None})
        assert joined["connected"], joined
        assert tab.run(UPGRADED) == "websocket"
        assert tab.run(EMIT, ["get"]) == {"who": "lan"}


def test_what_chromium_sends_on_a_same_origin_get(context: Context, tmp_path: Path) -> None:
    """The facts the origin policy rests on (wsgisession.origins): measured, so a change in browsers shows."""
    with start("serve", tmp_path) as server:
        for base, fetch_site in ((server.url, "same-origin"), (f"http://{PLAIN_HOST}:{server.port}", None)):
            tab = context.tab()
            tab.goto(base + "/page")
            get = {k.lower(): v for k, v in tab.run(FETCH, ["/headers"])["body"].items()}
            assert "origin" not in get  # a same-origin GET carries no Origin
            assert get.get("sec-fetch-site") == fetch_site  # only trustworthy origins get Fetch Metadata
            assert get["referer"] == base + "/page"
            post = {k.lower(): v for k, v in tab.run(FETCH, ["/headers", {"method": "POST"}])["body"].items()}
            assert post["origin"] == base  # a POST always does


# -- 4. a session made or rotated over the socket reaches the cookie ----------
def test_rule8_a_login_over_the_socket_reaches_the_browser_cookie(context: Context, server: Server) -> None:
    tab = logged_in_tab(context, server, who="visitor")
    before = context.cookie(server.url)
    assert before is not None
    assert tab.run(CONNECT, {"url": None, "options": None})["connected"]
    tab.run(UPGRADED)
    assert tab.run(EMIT, ["login", "ann"]) == {"who": "visitor", "user": "ann"}
    assert tab.run(SETTLED) == {"ok": True, "status": 204, "error": None}
    after = context.cookie(server.url)
    assert after is not None and after["value"] != before["value"] and after["httpOnly"]
    # a reload: HTTP knows the user, and so does the socket of the new page
    assert tab.goto(server.url + "/page") == 200
    assert tab.run(FETCH, ["/get"])["body"] == {"who": "visitor", "user": "ann"}
    assert tab.run(CONNECT, {"url": None, "options": None})["connected"]
    assert tab.run(EMIT, ["get"]) == {"who": "visitor", "user": "ann"}
    # the old cookie loads nothing (another device holding it gets a fresh, empty session)
    thief = context.browser.context()
    try:
        thief.add_cookie(server.url, before["value"])
        stolen = thief.tab()
        stolen.goto(server.url + "/page")
        assert stolen.run(FETCH, ["/get"])["body"] == {}
    finally:
        thief.close()


def test_rule8_a_cookie_token_cannot_be_replayed(context: Context, server: Server) -> None:
    tab = logged_in_tab(context, server, who="visitor")
    assert tab.run(CONNECT, {"url": None, "options": None})["connected"]
    tab.run(EMIT, ["login", "ann"])
    assert tab.run(SETTLED)["ok"]
    token = tab.run("() => window.tokens[0]")
    replay = tab.run(FETCH, ["/wsgisession/cookie", {
        "method": "POST", "credentials": "same-origin", "headers": {"Content-Type": "application/json"},
        "body": '{"token": "%s"}' % token,
    }])
    assert replay == {"status": 400, "body": {"error": "bad_token"}}


def test_rule8_an_anonymous_socket_that_starts_a_session_gets_its_cookie(context: Context, tmp_path: Path) -> None:
    with start("serve", tmp_path, **{"wsgisession.allow_anonymous": "true"}) as server:
        tab = context.tab()
        assert tab.goto(server.url + "/page") == 200
        assert context.cookie(server.url) is None
        joined = tab.run(CONNECT, {"url": None, "options": None})
        assert joined["connected"], joined
        assert tab.run(EMIT, ["get"]) is None  # anonymous
        assert tab.run(EMIT, ["start", {"who": "zoe"}]) == {"who": "zoe"}
        assert tab.run(SETTLED) == {"ok": True, "status": 204, "error": None}
        assert context.cookie(server.url) is not None
        assert tab.run(EMIT, ["get"]) == {"who": "zoe"}  # the socket is bound to it now
        assert tab.run(FETCH, ["/get"])["body"] == {"who": "zoe"}
        tab.goto(server.url + "/page")
        assert tab.run(CONNECT, {"url": None, "options": None})["connected"]
        assert tab.run(EMIT, ["get"]) == {"who": "zoe"}


# -- 5. every refusal reason reaches the page -------------------------------
@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, redis: Redis) -> Iterator[Server]:
    """The lab app on Redis with an idle timeout of an hour."""
    directory = tmp_path_factory.mktemp("strict")
    settings = {"beaker.session.type": "ext:redis", "beaker.session.url": redis.url, "beaker.session.timeout": 3600}
    with start("serve", directory, **settings) as running:
        yield running


def signed(session_id: str) -> str:
    return SessionCookie(secret=SECRET).sign(session_id)


def refusal_in_page(context: Context, server: Server) -> str:
    tab = context.tab()
    assert tab.goto(server.url + "/page") == 200
    result = tab.run(CONNECT, {"url": None, "options": None})
    assert not result["connected"], result
    return str(result["error"])


def test_refusal_reasons_reach_the_page(context: Context, strict: Server, redis: Redis, foreign: str) -> None:
    assert refusal_in_page(context, strict) == "no_cookie"

    live = logged_in_tab(context, strict, who="ann")
    value = str(context.cookie(strict.url)["value"])  # type: ignore[index]
    session_id, _, signature = value.rpartition(".")
    forged = ("B" if signature[0] == "A" else "A") + signature[1:]
    context.add_cookie(strict.url, f"{session_id}.{forged}")
    assert refusal_in_page(context, strict) == "bad_signature"

    context.add_cookie(strict.url, signed(new_session_id()))
    assert refusal_in_page(context, strict) == "unknown_session"

    # a session whose last access was two hours ago, written into the server's store
    stale = SessionManager(store=Store(type="ext:redis", url=redis.url), fingerprint=Fingerprint(secret=SECRET))
    stale_id = new_session_id()
    past = time.time() - 7200
    stale.write(stale_id, Record(past, past, {"who": "old"}))
    context.add_cookie(strict.url, signed(stale_id))
    assert refusal_in_page(context, strict) == "expired"

    context.add_cookie(strict.url, value)
    tab = context.tab()
    tab.goto(f"{foreign}/page?base={strict.url}")
    refused = tab.run(CONNECT, {"url": strict.url, "options": {"transports": ["websocket"]}})
    assert refused == {"connected": False, "error": "bad_origin"}

    redis.stop()
    try:
        assert refusal_in_page(context, strict) == "store_unavailable"
    finally:
        redis.start()
    assert live.run(FETCH, ["/get"])["body"] == {"who": "ann"}  # nothing was lost or rotated


# -- 4. a graceful restart, as the page lives through it ----------------------
BACK_ON_A_NEW_WORKER = """async (old) => {
  const started = Date.now();
  while (Date.now() - started < 10000) {
    if (socket.connected) {
      try {
        const pid = await socket.timeout(1000).emitWithAck("whoami_pid");
        if (typeof pid === "number" && !old.includes(pid)) return {pid, ms: Date.now() - started};
      } catch (err) { /* no answer in time: the old worker went away under it */ }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return null;
}"""


@pytest.mark.redis
@pytest.mark.slow
def test_after_a_graceful_restart_the_page_is_back_on_a_new_worker_by_itself(context: Context, tmp_path: Path) -> None:
    """kill -HUP of gunicorn: io()'s own reconnection finds the new worker, in the same session.

    One worker: io() starts with polling, and polling needs sticky routing in front of several.
    """
    import re
    import signal

    from tests.servers import redis_server

    with redis_server(tmp_path) as url:
        ini = write_ini(tmp_path, use=LAB, **{"beaker.session.type": "ext:redis", "beaker.session.url": url,
                                              "socketio.message_queue": url})
        with gunicorn(ini, workers=1, extra_args=("--graceful-timeout", "10")) as server:
            tab = logged_in_tab(context, server, who="ann")
            assert tab.run(CONNECT, {"url": None, "options": None})["connected"]  # io()
            assert tab.run(UPGRADED) == "websocket"
            old = [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", server.output())]
            assert tab.run(EMIT, ["whoami_pid"]) in old
            time.sleep(1.0)  # the worker up: gunicorn's worker ignores a SIGTERM that comes before its handlers
            server.process.send_signal(signal.SIGHUP)
            back = tab.run(BACK_ON_A_NEW_WORKER, old, timeout=15)
            assert back is not None, server.output()[-2000:]
            assert back["ms"] < 4000, back  # the client's own reconnection delay is 1-1.5 s
            assert tab.run(EMIT, ["get"]) == {"who": "ann"}  # the same session, by the same cookie
            assert "Traceback" not in server.output()
    assert context.browser.errors()["page_errors"] == []
