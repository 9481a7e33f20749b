"""SPEC security rule: a websocket frame or polling body over the size limit is
refused before it is read into memory, and does not stall other greenlets.

The counter example runs under ``wsgisession serve`` and under gunicorn with
our worker. A raw client declares a 50 MB frame (or body) and floods it, while
a ticker times keep-alive HTTP requests to the same process. The stall is the
longest request in flight from the attack's start to 100 ms after the server
closed it (gevent-websocket alone: 10.5 s for a 20 MB frame, measured). On two
shared cores scheduling noise alone can exceed 50 ms now and then, so an attack
is measured up to three times; a real stall fails all three.
"""
from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
import time
from typing import Callable, Iterator

import pytest
import requests

from tests.helpers import chunked, connect, cookie_header, counter_http, frame
from tests.servers import Server, gunicorn, serve, write_ini

LIMIT = 1_000_000
DECLARED = 50_000_000
MAX_STALL = 0.050
Attack = Callable[[], "tuple[int, bytes]"]


@pytest.fixture(scope="module", params=["serve", "gunicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    ini = write_ini(tmp_path_factory.mktemp(f"limits-{request.param}"), **{"wsgisession.max_message_size": str(LIMIT)})
    with (serve if request.param == "serve" else gunicorn)(ini) as running:
        yield running


class Ticker(threading.Thread):
    """Times keep-alive HTTP requests to the server, back to back with a 5 ms pause."""

    def __init__(self, http: requests.Session, url: str) -> None:
        super().__init__(daemon=True)
        self.http, self.url = http, url
        self.requests: list[tuple[float, float]] = []  # (start, end)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            started = time.perf_counter()
            self.http.get(self.url, timeout=30).raise_for_status()
            self.requests.append((started, time.perf_counter()))
            time.sleep(0.005)

    def longest(self, start: float = 0.0, end: float = float("inf")) -> float:
        """The longest request in flight at some time between ``start`` and ``end``."""
        return max((e - s for s, e in self.requests if s <= end and e >= start), default=0.0)


@contextlib.contextmanager
def ticking(http: requests.Session, server: Server) -> Iterator[Ticker]:
    ticker = Ticker(http, server.url + "/n")
    ticker.start()
    time.sleep(0.2)
    try:
        yield ticker
    finally:
        time.sleep(0.2)
        ticker.halt.set()
        ticker.join(35)


def measure(label: str, http: requests.Session, server: Server, attack: Attack) -> tuple[int, float, bytes]:
    """Run ``attack`` under a ticker, up to three times: (bytes sent, seconds, response)."""
    for _ in range(3):
        with ticking(http, server) as ticker:
            started = time.perf_counter()
            sent, response = attack()
            ended = time.perf_counter()
        stall = ticker.longest(started, ended + 0.1)
        print(f"\n{label}: over in {(ended - started) * 1000:.1f} ms, {sent} bytes sent; "
              f"{len(ticker.requests)} requests, longest {ticker.longest() * 1000:.1f} ms, "
              f"during the attack {stall * 1000:.1f} ms")
        assert len(ticker.requests) > 20
        if stall < MAX_STALL:
            break
    assert stall < MAX_STALL
    return sent, ended - started, response


#: what the attacker gets to send before the server closes: the 1 MB limit plus what the kernel
#: buffers on both ends of a loopback connection (up to ~5 MB seen here; tcp_rmem's maximum is
#: 32 MB), far from the 50 MB declared: the server stopped reading at the limit
SENT_AT_MOST = DECLARED // 5


def raw(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def headers(server: Server, http: requests.Session) -> str:
    return f"Host: 127.0.0.1:{server.port}\r\nOrigin: {server.url}\r\nCookie: {cookie_header(http)}\r\n"


def flood(sock: socket.socket, first: bytes) -> tuple[int, bytes]:
    """Send ``first``, then zeros until the server closes; then read what it answered."""
    sent, chunk, started = 0, bytes(65536), time.perf_counter()
    with contextlib.suppress(OSError):
        sock.sendall(first)
        while sent < DECLARED and time.perf_counter() - started < 10:
            sock.sendall(chunk)
            sent += len(chunk)
    response = b""
    with contextlib.suppress(OSError):
        while data := sock.recv(65536):
            response += data
    return sent, response


def websocket_attack(server: Server, http: requests.Session) -> Attack:
    def attack() -> tuple[int, bytes]:
        with raw(server) as sock:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n{headers(server, http)}"
                          f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            handshake = b""
            while b"\r\n\r\n" not in handshake:
                handshake += sock.recv(1)
            assert handshake.startswith(b"HTTP/1.1 101 "), handshake
            return flood(sock, frame(length=DECLARED, opcode=0x1))
    return attack


def polling_attack(server: Server, http: requests.Session, sid: str, *, chunked_body: bool) -> Attack:
    """POST a 50 MB body (declared, or chunked without a length) to the polling endpoint."""
    head = f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n{headers(server, http)}"
    head += "Content-Type: text/plain;charset=UTF-8\r\n"
    if chunked_body:
        first = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunked(*[b"4" * 65536] * 20)[:-5]
    else:
        first = (head + f"Content-Length: {DECLARED}\r\n\r\n").encode()

    def attack() -> tuple[int, bytes]:
        with raw(server) as sock:
            return flood(sock, first)
    return attack


def test_a_50mb_websocket_frame_is_refused_without_stalling(server: Server) -> None:
    http = counter_http(server.url, "flood")
    sent, seconds, rest = measure("websocket 50 MB frame", http, server, websocket_attack(server, http))
    assert seconds < 2.0 and sent < SENT_AT_MOST
    assert rest.endswith(b"\x88\x11\x03\xf1message too big")  # a close frame: 1009 and its reason
    assert "websocket message refused: 50000000 bytes declared" in server.output()
    session_id = (http.cookies.get("beaker.session.id") or "").split(".")[0]
    assert session_id and session_id not in server.output()


def test_a_message_within_the_limit_still_works(server: Server) -> None:
    http = counter_http(server.url, "big")
    client = connect(server.url, cookie=cookie_header(http))
    try:
        payload = "z" * (LIMIT - 1000)
        with ticking(http, server) as ticker:
            started = time.perf_counter()
            assert client.call("echo", payload, timeout=20) == payload
            ended = time.perf_counter()
        stall = ticker.longest(started, ended)
        print(f"\nwebsocket 999 kB echo: {(ended - started) * 1000:.1f} ms, longest request meanwhile "
              f"{stall * 1000:.1f} ms")
        assert stall < 0.25  # 1 MB of JSON each way (~25 ms idle); gevent-websocket alone: 570 ms
        assert client.call("incr") == 1
    finally:
        client.disconnect()


@pytest.mark.parametrize("body", ["content-length", "chunked"])
def test_a_polling_body_over_the_limit_gets_413_and_the_session_survives(server: Server, body: str) -> None:
    http = counter_http(server.url, f"poll-{body}")
    client = connect(server.url, cookie=cookie_header(http), transport="polling")
    try:
        assert client.call("incr") == 1
        attack = polling_attack(server, http, client.eio.sid, chunked_body=body == "chunked")
        sent, seconds, response = measure(f"polling POST over the limit ({body})", http, server, attack)
        assert response.startswith(b"HTTP/1.1 413 "), response[:200]
        size = b"more than 1000000" if body == "chunked" else b"50000000"
        assert b"message too big: the body is %s bytes, the limit is 1000000 bytes" % size in response
        assert seconds < 2.0 and sent < SENT_AT_MOST
        assert client.connected and client.call("whoami") == f"poll-{body}"
        assert client.call("incr") == 2
        assert http.get(server.url + "/n", timeout=10).text.strip() == "2"
        assert "request body refused" in server.output()
    finally:
        client.disconnect()
