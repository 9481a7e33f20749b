"""The official JavaScript socket.io client (node) for the tests: ``tests/js/sio_driver.js`` driven from Python.

    with JsClient(node_binary(), server.url, cookie=cookie_header(http), transport="upgrade") as client:
        client.connected()
        client.call("incr")                      # an emit with an acknowledgement: its reply
        client.next("event")                     # the next server emit, {"event", "args", "at"}

The cookie comes from HTTP; node sends it with ``extraHeaders: {Cookie, Origin}``,
as a browser page of the same origin would. Every message carries ``at``, the
``time.monotonic()`` at which Python read it.
"""
from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT

DRIVER = ROOT / "tests" / "js" / "sio_driver.js"
CLIENT_PACKAGE = ROOT / "node_modules" / "socket.io-client"
TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],  # the client's default
}


def node_binary() -> str:
    """node, or a failed test that says how to install it and the client."""
    binary = shutil.which("node")
    if binary is None:
        pytest.fail("node is not installed (apt-get install nodejs; .ci/run does it)")
    if not CLIENT_PACKAGE.is_dir():
        pytest.fail(f"{CLIENT_PACKAGE} is missing: run `make` (npm install)")
    return binary


class JsClient:
    """One ``node tests/js/sio_driver.js`` process: a socket.io-client connection."""

    def __init__(self, node: str, base: str, *, cookie: str | None, origin: str | None = "same",
                 transport: str = "websocket", namespace: str = "/", ca: Path | None = None,
                 timeout_ms: int = 20000, reconnection: bool = False) -> None:
        options: dict[str, Any] = {
            "url": base,
            "cookie": cookie,
            "origin": base if origin == "same" else origin,
            "transports": TRANSPORTS[transport],
            "namespace": namespace,
            "timeout_ms": timeout_ms,
            "reconnection": reconnection,
        }
        if ca is not None:
            options["ca"] = str(ca)  # an https server whose certificate this CA signed
        self.process = subprocess.Popen(
            [node, str(DRIVER), json.dumps(options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []  # everything node printed, for failure messages
        self.pending: list[dict[str, Any]] = []
        self._ids = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                try:
                    message = json.loads(line)
                    message["at"] = time.monotonic()  # when it reached Python
                    self.messages.put(message)
                except ValueError:
                    self.messages.put({"type": "stdout", "text": line})
        self.messages.put(None)

    def next(self, *types: str, timeout: float = 10.0) -> dict[str, Any]:
        """The oldest message of one of ``types`` not taken yet; others wait their turn."""
        for message in self.pending:
            if message["type"] in types:
                self.pending.remove(message)
                return message
        while True:
            try:
                message = self.messages.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {types} from node within {timeout}s; seen {self.seen}") from None
            if message is None:
                self.messages.put(None)
                raise AssertionError(f"node exited before {types}; seen {self.seen}; stderr: {self.stderr()}")
            self.seen.append(message)
            if message["type"] in types:
                return message
            self.pending.append(message)

    def connected(self) -> dict[str, Any]:
        message = self.next("connect", "connect_error", "timeout")
        assert message["type"] == "connect", message
        return message

    def call(self, event: str, *args: Any) -> Any:
        """Emit ``event`` with an acknowledgement; return the server's reply."""
        self._ids += 1
        self._send({"id": self._ids, "emit": event, "args": list(args)})
        message = self.next("ack", "error", "timeout")
        assert message["type"] == "ack" and message["id"] == self._ids, message
        return message["value"]

    def _send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def close(self) -> int:
        """Close stdin (the driver disconnects and exits); kill it if it does not."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            code = self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code

    def __enter__(self) -> JsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
