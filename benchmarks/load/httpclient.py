"""The HTTP load client: keep-alive GETs on a few connections at once, one request in flight on each.

    from load.httpclient import get_cookie, run
    cookie = get_cookie(port, "/login")
    result = run(port, "/read", cookie, connections=8, requests=3000)

Non-blocking sockets and a selector, requests built once, answers read by their
``Content-Length``: one core of this machine drives ~15,000 requests per second,
more than any server measured here serves, so the server stays the bottleneck.
"""
from __future__ import annotations

import http.client
import selectors
import socket
import time
from http.cookies import SimpleCookie
from typing import Any


def get_cookie(port: int, path: str) -> str:
    """The Cookie header a server's ``path`` hands out (a new session)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
        jar: SimpleCookie = SimpleCookie()
        for value in response.headers.get_all("Set-Cookie") or []:
            jar.load(value)
        return "; ".join(f"{k}={m.value}" for k, m in jar.items())
    finally:
        conn.close()


class _Connection:
    __slots__ = ("sock", "buffer", "started", "sent")

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buffer = b""
        self.started = 0.0
        self.sent = False


def _complete(buffer: bytes) -> tuple[int, int] | None:
    """(status, length of the whole answer) once ``buffer`` holds a whole answer."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].decode("latin-1")
    status = int(head[9:12])
    length = None
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
    total = end + 4 + length
    return (status, total) if len(buffer) >= total else None


def run(port: int, path: str, cookie: str, *, connections: int, requests: int, timeout: float = 120) -> dict[str, Any]:
    """Send ``requests`` GETs of ``path`` over ``connections`` keep-alive connections; rate, latencies, errors."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
               "Connection: keep-alive\r\n\r\n").encode("latin-1")
    selector = selectors.DefaultSelector()
    conns = [_Connection(port) for _ in range(connections)]
    latencies: list[float] = []
    errors: dict[int, int] = {}
    to_send = requests
    started = time.perf_counter()
    deadline = started + timeout
    try:
        for conn in conns:
            if to_send:
                conn.sock.sendall(request)
                conn.started, conn.sent = time.perf_counter(), True
                to_send -= 1
                selector.register(conn.sock, selectors.EVENT_READ, conn)
        while len(latencies) + sum(errors.values()) < requests:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{path}: {len(latencies)} of {requests} answers in {timeout}s")
            for key, _ in selector.select(timeout=1.0):
                conn = key.data
                data = conn.sock.recv(65536)
                if not data:
                    raise RuntimeError(f"{path}: the server closed a keep-alive connection")
                conn.buffer += data
                done = _complete(conn.buffer)
                if done is None:
                    continue
                status, total = done
                now = time.perf_counter()
                if status == 200:
                    latencies.append((now - conn.started) * 1e6)
                else:
                    errors[status] = errors.get(status, 0) + 1
                conn.buffer = conn.buffer[total:]
                if to_send:
                    conn.sock.sendall(request)
                    conn.started = now
                    to_send -= 1
        elapsed = time.perf_counter() - started
    finally:
        selector.close()
        for conn in conns:
            conn.sock.close()
    latencies.sort()
    count = len(latencies)
    return {
        "requests": count, "errors": errors, "elapsed_s": elapsed,
        "requests_per_s": count / elapsed if elapsed else None,
        "p50_us": latencies[count // 2] if count else None,
        "p99_us": latencies[min(count - 1, int(0.99 * count))] if count else None,
    }
