"""Our server handler (wsgisession.server) in a gevent pywsgi server in this process: body limits,
the upgrade to a limited websocket, TCP_NODELAY."""
from __future__ import annotations

import gc
import socket
import weakref
from types import SimpleNamespace
from typing import Any, Iterator

import gevent
import gevent.socket
import pytest

from tests.helpers import chunked, close_code, frame, read_frame
from wsgisession.server import TRACK_GREENLET_TREE, Handler, freeze_loaded_heap, make_server, untrack_spawns
from wsgisession.websocket import (
    LimitedWebSocket,
)

LIMIT = 1000
# -- the handler in a real pywsgi server ---------------------------------
class App:
    """A WSGI app recording the bodies and websocket messages it read."""

    max_message_size = LIMIT
    socketio_path = "socket.io"

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.received: list[Any] = []
        self.kinds: list[type] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        websocket = environ.get("wsgi.websocket")
        if websocket is not None:
            self.kinds.append(type(websocket))
            while (message := websocket.receive()) is not None:
                self.received.append(message)
            return []
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.bodies.append(environ["wsgi.input"].read(length))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


@pytest.fixture
def served() -> Iterator[tuple[App, int]]:
    app = App()
    server = make_server(("127.0.0.1", 0), app)
    server.start()
    yield app, int(server.address[1])
    server.stop(timeout=1)


def request(port: int, head: str, body: bytes = b"") -> bytes:
    with gevent.socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        chunks = []
        with gevent.Timeout(5):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def test_polling_body_over_the_limit_gets_413_from_its_length(served: Any) -> None:
    app, port = served
    response = request(port, "POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
                             "Content-Length: 50000000\r\n", b"x" * 4096)
    assert response.startswith(b"HTTP/1.1 413 ")
    assert b"message too big: the body is 50000000 bytes, the limit is 1000 bytes" in response
    assert app.bodies == []


def test_body_within_the_limit_and_other_paths_reach_the_app(served: Any) -> None:
    app, port = served
    ok = request(port, f"POST /socket.io/?EIO=4 HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT}\r\n"
                       "Connection: close\r\n", b"y" * LIMIT)
    upload = request(port, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n",
                     b"z" * 5000)
    assert ok.startswith(b"HTTP/1.1 200 ") and upload.startswith(b"HTTP/1.1 200 ")
    assert app.bodies == [b"y" * LIMIT, b"z" * 5000]


def test_chunked_body_is_cut_off_at_the_limit(served: Any) -> None:
    app, port = served
    head = "POST /socket.io/?EIO=4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    response = request(port, head, chunked(*[b"c" * 400] * 10))
    assert response.startswith(b"HTTP/1.1 413 ") and b"more than 1000 bytes" in response
    assert request(port, head + "Connection: close\r\n", chunked(b"d" * 600, b"e" * 400)).startswith(b"HTTP/1.1 200 ")
    assert app.bodies == [b"d" * 600 + b"e" * 400]  # within the limit: given to the app with its length


def handshake(port: int, path: str = "/socket.io/?EIO=4&transport=websocket") -> Any:
    sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 ")
    return sock


def test_handler_upgrades_to_a_limited_websocket_that_refuses_big_frames(served: Any) -> None:
    app, port = served
    with handshake(port) as sock:
        sock.sendall(frame(b"hello", opcode=0x1) + frame(length=50_000_000) + b"x" * 1024)
        opcode, payload = read_frame(sock)
        assert opcode == 0x8 and close_code(payload) == 1009
        with gevent.Timeout(5):
            assert sock.recv(1) == b""  # the connection is closed
    assert app.received == ["hello"] and app.kinds == [LimitedWebSocket]


def test_handler_sets_tcp_nodelay() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.create_connection(listener.getsockname()) as tcp:
        Handler(tcp, ("127.0.0.1", 1), SimpleNamespace())
        assert tcp.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest.fixture
def greenlet_tree() -> Iterator[None]:
    """gevent's track_greenlet_tree as it was, put back after the test."""
    before = gevent.config.track_greenlet_tree
    try:
        yield
    finally:
        gevent.config.track_greenlet_tree = before


def test_untrack_spawns_turns_gevents_spawn_records_off(greenlet_tree: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACK_GREENLET_TREE, raising=False)
    gevent.config.track_greenlet_tree = True
    tracked = gevent.spawn(lambda: None)
    assert tracked.spawning_stack is not None
    tracked.join()
    assert untrack_spawns() is False
    spawned = gevent.spawn(lambda: None)
    assert spawned.spawning_stack is None and spawned.spawning_greenlet is None
    spawned.join()


@pytest.mark.parametrize("value", ["1", "0"])
def test_untrack_spawns_leaves_it_to_gevents_own_variable(
    greenlet_tree: None, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(TRACK_GREENLET_TREE, value)
    gevent.config.track_greenlet_tree = value == "1"  # as gevent read it at start-up
    assert untrack_spawns() is (value == "1")
    spawned = gevent.spawn(lambda: None)
    assert (spawned.spawning_stack is not None) is (value == "1")
    spawned.join()


def test_freeze_loaded_heap_collects_first_then_freezes_what_is_left() -> None:
    class Node:
        pass

    cycle = Node()
    cycle.self = cycle  # type: ignore[attr-defined]
    gone = weakref.ref(cycle)
    del cycle  # garbage only the cyclic collector frees
    try:
        frozen = freeze_loaded_heap()
        assert gone() is None, "the garbage was collected before the freeze"
        assert frozen == gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()  # this process is the test run, not a server
    assert gc.get_freeze_count() == 0
