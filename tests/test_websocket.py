"""The websocket's size limits and frame checks (wsgisession.websocket), on a real socket pair.

The client side writes frame headers, the server side is a LimitedWebSocket
reading through a stream that counts the bytes asked for, so "refused before
the payload is read" is exact.
"""
from __future__ import annotations

import logging
import os
import socket
import struct
import time
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from geventwebsocket.websocket import Header

from tests.helpers import MASK, close_code, frame, read_frame
from wsgisession.websocket import (
    DEFAULT_MAX_MESSAGE_SIZE,
    LimitedWebSocket,
    Utf8Check,
    message_limit,
    socketio_prefix,
    unmask,
)

LIMIT = 1000


class CountingStream:
    """The server end of the pair as gevent-websocket's Stream, counting bytes asked for."""

    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rb")
        self.sock = sock
        self.requested = 0

    def read(self, size: int) -> bytes:
        self.requested += size
        return bytes(self.file.read(size))

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, LimitedWebSocket, CountingStream]]:
    client, server = socket.socketpair()
    client.settimeout(5)
    stream = CountingStream(server)
    handler = SimpleNamespace(client_address=("127.0.0.1", 4242), logger=logging.getLogger("test.ws"),
                              server=SimpleNamespace(application=object()))
    websocket = LimitedWebSocket({"PATH_INFO": "/socket.io/"}, stream, handler, max_size=LIMIT)
    yield client, websocket, stream
    stream.file.close()
    client.close()
    server.close()


# -- frames -------------------------------------------------------------
def test_frame_over_the_limit_is_refused_from_its_header(pair: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, websocket, stream = pair
    client.sendall(frame(length=50_000_000))  # the header only: 50 MB declared
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="wsgisession.security"):
        assert websocket.receive() is None
    assert time.perf_counter() - started < 0.5
    assert stream.requested == 2 + 8 + 4  # the header, not one byte of payload
    assert websocket.closed
    opcode, payload = read_frame(client)
    assert opcode == 0x8 and close_code(payload) == 1009 and payload[2:] == b"message too big"
    assert "50000000 bytes declared, the limit is 1000" in caplog.text


def test_an_unmasked_client_frame_closes_the_connection_with_1002(pair: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, websocket, stream = pair
    client.sendall(bytes([0x81, 5]) + b"hello")  # a text frame without the mask bit (RFC 6455 5.1)
    with caplog.at_level(logging.WARNING, logger="wsgisession.security"):
        assert websocket.receive() is None
    assert websocket.closed and stream.requested == 2  # the header only: the payload is not read
    opcode, payload = read_frame(client)
    assert opcode == 0x8 and close_code(payload) == 1002
    assert "websocket frame refused: not masked" in caplog.text


def test_frame_within_the_limit_is_received(pair: Any) -> None:
    client, websocket, _ = pair
    client.sendall(frame(b"x" * LIMIT, opcode=0x1))
    assert websocket.receive() == "x" * LIMIT
    data = os.urandom(LIMIT)
    client.sendall(frame(data, opcode=0x2))
    assert websocket.receive() == data


def test_fragments_count_toward_one_message(pair: Any) -> None:
    client, websocket, stream = pair
    client.sendall(frame(b"a" * 600, opcode=0x1, fin=False) + frame(b"\x00\x00", opcode=0x9)
                   + frame(length=600, opcode=0x0))
    assert websocket.receive() is None
    opcode, payload = read_frame(client)
    assert opcode == 0xA  # the ping in between was answered and not counted
    opcode, payload = read_frame(client)
    assert close_code(payload) == 1009
    assert stream.requested == (8 + 600) + (6 + 2) + 8  # never the second fragment's payload


def test_a_new_message_starts_a_new_count(pair: Any) -> None:
    client, websocket, _ = pair
    for _ in range(3):
        client.sendall(frame(b"a" * 600, opcode=0x1, fin=False) + frame(b"b" * 400, opcode=0x0))
        assert websocket.receive() == "a" * 600 + "b" * 400


def test_invalid_utf8_closes_with_1007(pair: Any) -> None:
    client, websocket, _ = pair
    client.sendall(frame(b"ok \xff\xfe", opcode=0x1))
    assert websocket.receive() is None
    assert close_code(read_frame(client)[1]) == 1007


def test_close_frames_carry_their_code(pair: Any) -> None:
    client, websocket, _ = pair
    client.sendall(frame(struct.pack("!H", 1001) + b"away", opcode=0x8))
    assert websocket.receive() is None
    assert read_frame(client) == (0x8, struct.pack("!H", 1001) + b"away")  # echoed, code included
    websocket.close(1000, "bye")  # already closed: writes nothing, does not raise


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1023, 65537])
def test_unmask_matches_gevent_websocket(size: int) -> None:
    data, mask = os.urandom(size), os.urandom(4)
    header = Header(length=size)
    header.mask = mask
    assert unmask(data, mask) == bytes(header.unmask_payload(data))


def test_unmask_and_utf8_of_a_1mb_message_take_milliseconds() -> None:
    data = b"a" * 1_000_000
    started = time.perf_counter()
    unmask(data, MASK)
    assert Utf8Check().validate(data)[0]
    assert time.perf_counter() - started < 0.05  # the pure-Python loops took ~0.2 s


def test_utf8_check_follows_code_points_across_fragments() -> None:
    check = Utf8Check()
    snowman = "☃".encode()
    assert check.validate(snowman[:1]) == (True, False, 1, 1)
    assert check.validate(snowman[1:]) == (True, True, 2, 3)
    assert check.validate(b"\xc0\xaf")[0] is False


# -- the limit's source -------------------------------------------------
def test_limit_and_path_come_from_the_app() -> None:
    assert message_limit(SimpleNamespace(max_message_size=5000)) == 5000
    engine = SimpleNamespace(eio=SimpleNamespace(max_http_buffer_size=7000))
    assert message_limit(SimpleNamespace(max_message_size=None, sio=engine)) == 7000
    assert message_limit(object()) == DEFAULT_MAX_MESSAGE_SIZE
    assert message_limit(SimpleNamespace(max_message_size="big")) == DEFAULT_MAX_MESSAGE_SIZE
    assert socketio_prefix(object()) == "/socket.io/"
    assert socketio_prefix(SimpleNamespace(socketio_path="/rt/")) == "/rt/"
