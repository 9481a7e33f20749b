"""What the tests share: constants, a clock, waits, session and frame builders, clients of the test servers.

Real server processes are started by ``tests/servers.py``; fixtures live in the
``conftest.py`` files. No test module imports from another test module: what
two of them need is here.
"""
from __future__ import annotations

import enum
import json
import struct
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import requests
import socketio

from wsgisession.cookies import SessionCookie
from wsgisession.realtime import SessionSockets
from wsgisession.session import SharedSession
from wsgisession.testing import connect_socket, refusal_reason
from wsgisession.testing import (
    cookie_header as cookie_header,  # re-exported for the tests
)
from wsgisession.websocket import unmask

if TYPE_CHECKING:
    from tests.servers import Server
    from wsgisession.manager import SessionManager

# -- constants ------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"
#: the official socket.io client as npm installs it (``make setup``)
CLIENT_JS = ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
#: the one secret of every test: in-process managers and apps, and the INI files of the test servers
SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
#: the lab app (tests/apps.py) as an INI's ``use =``
LAB = "call:tests.apps:app_factory"


# -- time -------------------------------------------------------------------
class Clock:
    """A controllable clock for expiry tests."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until ``predicate`` holds; fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true after {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


# -- sessions in this process -------------------------------------------------
class Color(enum.Enum):
    """A value JSON cannot hold as itself."""

    RED = "red"


def stored(manager: SessionManager, session_id: str) -> dict[str, Any] | None:
    """The data of a session as its store holds it (``None``: no record)."""
    text = manager.store.read(session_id)
    return None if text is None else dict(json.loads(text)["data"])


def record_endings(manager: SessionManager) -> list[tuple[str, str]]:
    """The (session id, reason) of every ending the manager tells its listeners from now on."""
    ended: list[tuple[str, str]] = []

    class Recorder:
        def session_ended(self, session_id: str, reason: str) -> None:
            ended.append((session_id, reason))

        def session_rotated(self, old_id: str, new_id: str) -> None:
            pass

    manager.listeners.append(Recorder())
    return ended


def saved_session(manager: SessionManager, **values: Any) -> SharedSession:
    """A new session holding ``values``, saved."""
    session = SharedSession.new(manager)
    session.update(values)
    assert session.save()
    return session


# -- raw websocket frames and HTTP bodies -------------------------------------
MASK = b"\x11\x22\x33\x44"


def frame(payload: bytes = b"", *, opcode: int = 0x2, fin: bool = True, length: int | None = None) -> bytes:
    """A masked client frame; ``length`` declares a size other than the payload's."""
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        head = bytes([first, 0x80 | size])
    elif size < 65536:
        head = bytes([first, 0x80 | 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack("!Q", size)
    return head + MASK + unmask(payload, MASK)


def recv_exactly(sock: Any, size: int) -> bytes:
    """Exactly ``size`` bytes from ``sock`` (EOFError if it closes first)."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def read_frame(sock: Any) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""
    first, second = recv_exactly(sock, 2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", recv_exactly(sock, 2))[0]
    elif size == 127:
        size = struct.unpack("!Q", recv_exactly(sock, 8))[0]
    return first & 0x0F, recv_exactly(sock, size)


def close_code(payload: bytes) -> int:
    """The status code of a close frame's payload."""
    return int(struct.unpack("!H", payload[:2])[0])


def chunked(*parts: bytes) -> bytes:
    """An HTTP body in chunked transfer encoding, its last chunk included."""
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


# -- clients of the test servers ------------------------------------------------
def counter_http(base: str, user: str = "ann") -> requests.Session:
    """An HTTP client logged in to the counter example (its cookie jar sends the cookie)."""
    http = requests.Session()
    response = http.post(base + "/login", params={"user": user}, timeout=10)
    response.raise_for_status()
    return http


def counter_cookie(base: str, user: str) -> str:
    """Log in to the counter; the Cookie header to send (production.ini's cookie is Secure: requests would not send it)."""
    response = requests.post(base + "/login", params={"user": user}, timeout=10)
    response.raise_for_status()
    return f"counter.sid={response.cookies['counter.sid']}"


def lab_login(server: Server, **values: str) -> requests.Session:
    """An HTTP client whose session (on the lab app, tests/apps.py) holds ``values``."""
    http = requests.Session()
    http.get(server.url + "/set", params=values or {"who": "ann"}, timeout=10).raise_for_status()
    return http


def lab_data(http: requests.Session, server: Server) -> dict[str, Any]:
    """The lab app's session data, read over HTTP."""
    response = http.get(server.url + "/get", timeout=10)
    response.raise_for_status()
    return dict(response.json())


def connect(base: str, **kwargs: Any) -> socketio.Client:
    """A python-socketio client; a refusal raises ConnectionError with ``.reason``."""
    return connect_socket(base, **kwargs)


def close_transport(client: socketio.Client) -> None:
    """Close the websocket of a client whose server went away (python-engineio leaves it open)."""
    websocket = getattr(client.eio, "ws", None)
    if websocket is not None:
        websocket.shutdown()


def refusal(base: str, **kwargs: Any) -> str:
    """The ``connect_error`` reason a refused client receives."""
    reason = refusal_reason(base, **kwargs)
    if reason is None:
        raise AssertionError("the connection was accepted")
    return reason


# -- the Socket.IO side in this process, without a server ------------------------
def bound(manager: SessionManager, **options: Any) -> tuple[SessionSockets, SessionManager]:
    """A real SessionSockets over ``manager`` (no sweep), with a ``noop`` event."""
    sockets = SessionSockets(manager=manager, cookie=SessionCookie(secret=SECRET), sweep_interval=None, **options)
    sockets.on("noop", lambda sid, session: None)
    return sockets, manager


def handshake(sockets: SessionSockets, session_id: str | None, **headers: str) -> dict[str, Any]:
    """The environ of a same-origin handshake carrying ``session_id``'s cookie (none for ``None``)."""
    environ: dict[str, Any] = {"HTTP_HOST": "localhost", "HTTP_ORIGIN": "http://localhost", **headers}
    if session_id is not None:
        environ["HTTP_COOKIE"] = f"{sockets.cookie.name}={sockets.cookie.sign(session_id)}"
    return environ


def joined(sockets: SessionSockets, session_id: str, eio_sid: str, *, namespace: str = "/") -> str:
    """A socket of ``session_id``, connected as python-socketio connects one: its manager registers it,
    then :meth:`SessionSockets.connect` takes a same-origin handshake with the session's cookie."""
    sid: str = sockets.sio.manager.connect(eio_sid, namespace)
    sockets.connect(namespace, sid, handshake(sockets, session_id), None, None)
    return sid


def tampered(value: str, position: int = -6) -> str:
    """``value`` with one character changed (always to a different one, never a no-op)."""
    i = position % len(value)
    replacement = "A" if value[i] != "A" else "B"
    return value[:i] + replacement + value[i + 1:]


# -- load: many requests and events at once (the lost-update and deployment tests) ----------------
def new_session(base: str) -> tuple[str, str]:
    """A new session (``who = ann``); its Cookie header and its id."""
    with requests.Session() as http:  # closed: an idle keep-alive connection would delay the server's stop
        http.get(base + "/set", params={"who": "ann"}, timeout=10).raise_for_status()
        cookie = cookie_header(http)
    return cookie, cookie.split("=", 1)[1].rsplit(".", 1)[0]


def get(base: str, cookie: str) -> dict[str, Any]:
    response = requests.get(base + "/get", headers={"Cookie": cookie}, timeout=10)
    response.raise_for_status()
    return dict(response.json())


def http_job(base: str, cookie: str, path: str, **params: Any) -> Callable[[], tuple[str, dict[str, Any]]]:
    def job() -> tuple[str, dict[str, Any]]:
        response = requests.get(base + path, params=params, headers={"Cookie": cookie, "Connection": "close"},
                                timeout=30)
        response.raise_for_status()
        return response.headers["X-Worker-Pid"], dict(response.json())

    return job


def socket_job(client: socketio.Client, event: str, args: list[Any]) -> Callable[[], list[Any]]:
    """Emit ``event`` once per item of ``args`` without waiting, then wait for every ack."""

    def job() -> list[Any]:
        acks: list[Any] = []
        lock, done = threading.Lock(), threading.Event()

        def ack(value: Any = None) -> None:
            with lock:
                acks.append(value)
                if len(acks) == len(args):
                    done.set()

        for arg in args:
            client.emit(event, *([] if arg is None else [arg]), callback=ack)
        assert done.wait(30), f"{len(acks)} of {len(args)} {event!r} events acknowledged"
        return acks

    return job


def all_at_once(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run every job in its own thread, all released at the same moment."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], Any]) -> Any:
        barrier.wait(30)
        return job()

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def four_sockets(base: str, cookie: str) -> list[socketio.Client]:
    """Two websocket and two polling clients. A polling client sends what is queued in one
    POST, and python-engineio refuses a payload of more than 16 packets (its ping-flood
    fix): keep each client's burst under that (M / 4 events each)."""
    return [connect(base, cookie=cookie, transport=t) for t in ("websocket", "websocket", "polling", "polling")]


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def check_increments(base: str, cookie: str, clients: list[socketio.Client], incr: str = "incr", *, N: int = 50,
                     M: int = 50) -> dict[str, Any]:
    """N HTTP ``/incr`` and M socket ``incr`` at once: every value 1..N+M handed out exactly once."""
    http_jobs = [http_job(base, cookie, "/" + incr) for _ in range(N)]
    event_jobs = [socket_job(c, incr, [None] * k) for c, k in zip(clients, split(M, len(clients)))]
    started = time.monotonic()
    results = all_at_once([*http_jobs, *event_jobs])
    elapsed = time.monotonic() - started
    http_values = [data["n"] for _, data in results[:N]]
    event_values = [n for acks in results[N:] for n in acks]
    pids = Counter(pid for pid, _ in results[:N])
    final = get(base, cookie)
    print(f"\n  {N} HTTP + {M} socket increments in {elapsed:.2f}s: n = {final['n']}; HTTP per worker {dict(pids)}")
    assert sorted(http_values + event_values) == list(range(1, N + M + 1))
    assert final["n"] == N + M
    return {"pids": pids}


def disconnect(clients: list[socketio.Client]) -> None:
    for client in clients:
        client.disconnect()


def spread_sockets(base: str, cookie: str, workers: int) -> list[socketio.Client]:
    """Websocket clients on as many workers as will take them: connected in bursts (one
    at a time, the worker that accepted last tends to take them all), two per worker.
    A worker still loading the app takes none: keep trying for a while."""
    clients: list[socketio.Client] = []
    per_worker: Counter[int] = Counter()
    deadline = time.monotonic() + 15
    while len(per_worker) < workers and time.monotonic() < deadline:
        if clients:
            time.sleep(0.2)
        with ThreadPoolExecutor(2 * workers) as pool:
            burst = list(pool.map(lambda _: connect(base, cookie=cookie, transport="websocket"), range(2 * workers)))
        for client in burst:
            pid = int(client.call("pid", timeout=10))
            if per_worker[pid] < 2:
                per_worker[pid] += 1
                clients.append(client)
            else:
                client.disconnect()
    return clients
