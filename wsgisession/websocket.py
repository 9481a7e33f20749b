"""Size limits for Socket.IO traffic, checked before the bytes are read.

gevent-websocket reads a whole frame into memory, unmasks it and validates its
UTF-8 in pure Python before anyone can look at its size: one 20 MB frame
stalled every other greenlet of the process for 9.5 s (measured).
:class:`LimitedWebSocket` replaces the smallest pieces of its ``WebSocket``:

- ``read_frame`` checks the length declared in the frame header (added up over
  the frames of one fragmented message) against the limit *before* reading the
  payload, and unmasks with integer arithmetic instead of a per-byte loop;
- ``receive`` answers a message over the limit with close code 1009 ("message
  too big") and ends the connection;
- a client frame that is not masked is a protocol error (RFC 6455 5.1: the
  server must close the connection; gevent-websocket accepts it): close code
  1002, its payload unread;
- ``close`` sends its status code (gevent-websocket 0.10.1 drops it);
- UTF-8 is validated by the codec in C, not per byte in Python.

The server handler (:class:`wsgisession.server.Handler`) creates it on upgrade
and refuses polling bodies over the limit with 413 from their headers. The
limit is the served app's ``max_message_size`` (see :func:`message_limit`)::

    app = make_app(my_app, secret=SECRET, max_message_size=1_000_000)
"""
from __future__ import annotations

import codecs
import logging
import struct
from typing import Any

from geventwebsocket.exceptions import ProtocolError, WebSocketError
from geventwebsocket.websocket import Header, WebSocket

from .errors import MessageTooBig

security_log = logging.getLogger("wsgisession.security")

#: The limit when the served app does not name one (Engine.IO's own default).
DEFAULT_MAX_MESSAGE_SIZE = 1_000_000

#: WebSocket close code 1009: the message is too big to process (RFC 6455 7.4.1).
CLOSE_TOO_BIG = 1009


def message_limit(app: object) -> int:
    """The size limit for ``app``: its ``max_message_size``.

    ``None`` (or an app without the attribute, e.g. one wrapped by another
    filter) falls back to its python-socketio server's ``max_http_buffer_size``,
    then to :data:`DEFAULT_MAX_MESSAGE_SIZE`: Engine.IO refuses larger messages
    anyway, only after reading them.
    """
    limit = getattr(app, "max_message_size", None)
    if limit is None:
        engine = getattr(getattr(app, "sio", None), "eio", None)
        limit = getattr(engine, "max_http_buffer_size", None)
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        return limit
    return DEFAULT_MAX_MESSAGE_SIZE


def socketio_prefix(app: object) -> str:
    """The path prefix of ``app``'s Socket.IO endpoint, e.g. ``/socket.io/``."""
    path = getattr(app, "socketio_path", None)
    if not isinstance(path, str) or not path.strip("/"):
        path = "socket.io"
    return "/" + path.strip("/") + "/"


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask``, at C speed (one bignum XOR)."""
    size = len(payload)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


class Utf8Check:
    """gevent-websocket's ``Utf8Validator`` interface over the C UTF-8 codec.

    ``validate`` returns ``(valid, ends_on_code_point, index, total_index)``.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._total = 0

    def validate(self, data: bytes) -> tuple[bool, bool, int, int]:
        try:
            self._decoder.decode(data, False)
        except UnicodeDecodeError as exc:
            return False, False, exc.start, self._total + exc.start
        self._total += len(data)
        return True, not self._decoder.getstate()[0], len(data), self._total


class LimitedWebSocket(WebSocket):  # type: ignore[misc]
    """gevent-websocket's ``WebSocket`` that refuses messages over ``max_size`` from their headers."""

    closed: bool
    environ: Any
    stream: Any
    raw_read: Any
    raw_write: Any

    def __init__(self, environ: Any, stream: Any, handler: Any, *, max_size: int) -> None:
        super().__init__(environ, stream, handler)
        self.max_size = max_size
        self._message_size = 0
        self.utf8validator = Utf8Check()

    def read_frame(self) -> tuple[Any, bytes]:
        header = Header.decode_header(self.stream)
        if header.flags:
            raise ProtocolError("reserved bits set without an extension")
        if not header.mask:  # upstream's receive() answers a ProtocolError with close code 1002
            security_log.warning(
                "websocket frame refused: not masked (client %s, path %s)",
                client_of(self.handler), (self.environ or {}).get("PATH_INFO", "-"),
            )
            raise ProtocolError("a client frame must be masked (RFC 6455 5.1)")
        length: int = header.length
        if header.opcode in (self.OPCODE_TEXT, self.OPCODE_BINARY, self.OPCODE_CONTINUATION):
            # control frames (<= 125 bytes) do not count; the fragments of one message add up
            size = length + (self._message_size if header.opcode == self.OPCODE_CONTINUATION else 0)
            if size > self.max_size:
                raise MessageTooBig(size, self.max_size)
            self._message_size = 0 if header.fin else size
        if not length:
            return header, b""
        try:
            payload: bytes = self.raw_read(length)
        except Exception:  # as upstream: any failure to read is a truncated frame
            payload = b""
        if len(payload) != length:
            raise WebSocketError("Unexpected EOF reading frame payload")
        return header, unmask(payload, header.mask) if header.mask else payload

    def receive(self) -> Any:
        try:
            return super().receive()
        except MessageTooBig as exc:
            security_log.warning(
                "websocket message refused: %s bytes declared, the limit is %s (client %s, path %s)",
                exc.size, exc.limit, client_of(self.handler), (self.environ or {}).get("PATH_INFO", "-"),
            )
            self.close(CLOSE_TOO_BIG, "message too big")
            return None

    def close(self, code: int = 1000, message: bytes | str = b"") -> None:
        """Send a close frame that carries ``code`` (upstream drops it), then let go of the stream."""
        if self.closed:
            self.current_app.on_close("Connection is already closed")
            return
        reason = message.encode("utf-8") if isinstance(message, str) else bytes(message or b"")
        try:
            self.send_frame(struct.pack("!H", code) + reason[:123], self.OPCODE_CLOSE)
        except WebSocketError:
            self.logger.debug("Failed to write closing frame -> closing socket")
        finally:
            self.closed = True
            self.stream = self.raw_write = self.raw_read = self.environ = None


def client_of(handler: Any) -> str:
    """The peer address of a pywsgi handler, for logs."""
    address = getattr(handler, "client_address", None)
    return str(address[0]) if isinstance(address, tuple) and address else str(address or "-")


def retire(websocket: Any) -> None:
    """Mark gevent-websocket's own ``WebSocket`` closed without writing anything.

    Its ``__del__`` calls ``close()``; closed, that writes no frame. Dropping the
    handler also keeps it from logging on the way out.
    """
    websocket.closed = True
    websocket.handler = websocket.stream = websocket.raw_write = websocket.raw_read = websocket.environ = None
