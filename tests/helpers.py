"""What the tests share: constants, a clock, waits, session and frame builders, clients of the test servers.

Real server processes are started by ``tests/servers.py``; fixtures live in the
``conftest.py`` files. No test module imports from another test module: what
two of them need is here.
"""
from __future__ import annotations

import enum
import json
import struct
import time
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
    response = http.get(base + "/login", params={"user": user}, timeout=10)
    response.raise_for_status()
    return http


def counter_cookie(base: str, user: str) -> str:
    """Log in to the counter; the Cookie header to send (production.ini's cookie is Secure: requests would not send it)."""
    response = requests.get(base + "/login", params={"user": user}, timeout=10)
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
