"""wirejson: Socket.IO packets by orjson, read and written as engineio.json would."""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import uuid
from typing import Any

import pytest
from engineio import json as engineio_json
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio import packet

from tests.helpers import Color
from wsgisession import wirejson

COMPACT = {"separators": (",", ":")}

scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # past 64 bits too
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec=None))  # lone surrogates too
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


def read_back(text: str) -> str:
    """A decoded value's repr: types count (1, 1.0 and True differ)."""
    return repr(json.loads(text))


@settings(max_examples=400, deadline=None)
@given(values)
def test_dumps_means_what_the_standard_library_writes(value: Any) -> None:
    assert read_back(wirejson.dumps(value, **COMPACT)) == read_back(json.dumps(value, **COMPACT))


@settings(max_examples=400, deadline=None)
@given(values)
def test_loads_reads_what_engineio_json_reads(value: Any) -> None:
    text = json.dumps(value, **COMPACT)
    assert repr(wirejson.loads(text)) == repr(engineio_json.loads(text))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='0123456789[]{}",:.-+eE \\ufNaIity', max_size=40))
def test_loads_fails_where_engineio_json_fails(text: str) -> None:
    try:
        expected: Any = repr(engineio_json.loads(text))
    except ValueError as exc:
        expected = type(exc)
    try:
        got: Any = repr(wirejson.loads(text))
    except ValueError as exc:
        got = type(exc)
    assert got == expected


def test_loads_keeps_integers_past_64_bits_exact() -> None:
    assert wirejson.loads('["n",123456789012345678901234567890]') == ["n", 123456789012345678901234567890]
    assert wirejson.loads("[-9223372036854775809]") == [-9223372036854775809]


def test_loads_keeps_engineio_limit_on_long_integers() -> None:
    with pytest.raises(ValueError):
        wirejson.loads("[" + "9" * 101 + "]")


def test_loads_reads_what_orjson_refuses_as_the_standard_library_does() -> None:
    assert math.isnan(wirejson.loads("[NaN]")[0])
    assert wirejson.loads('["\\ud800"]') == ["\ud800"]
    assert wirejson.loads(b'{"a":1}') == {"a": 1}


def test_dumps_of_values_orjson_would_write_differently_falls_back() -> None:
    class Text(str):
        pass

    @dataclasses.dataclass
    class Point:
        x: int

    assert wirejson.dumps({1: "a", None: "b"}, **COMPACT) == '{"1":"a","null":"b"}'
    assert wirejson.dumps([2**70], **COMPACT) == "[1180591620717411303424]"
    assert wirejson.dumps([Text("t")], **COMPACT) == '["t"]'
    for refused in (datetime.datetime(2026, 1, 1), Point(1), {1, 2}):
        with pytest.raises(TypeError):
            wirejson.dumps([refused], **COMPACT)


def test_dumps_differs_only_as_documented() -> None:
    assert wirejson.dumps(["\u00e9"], **COMPACT) == '["\u00e9"]'  # UTF-8, not \\u00e9: the same string
    assert wirejson.dumps([math.nan, math.inf], **COMPACT) == "[null,null]"
    assert wirejson.dumps([uuid.UUID(int=1), Color.RED], **COMPACT) == (
        '["00000000-0000-0000-0000-000000000001","red"]'
    )


def test_dumps_with_other_arguments_is_the_standard_library() -> None:
    assert wirejson.dumps({"b": 1, "a": 2}, sort_keys=True) == json.dumps({"b": 1, "a": 2}, sort_keys=True)
    assert wirejson.dumps([1, 2]) == "[1, 2]"


def test_socketio_packets_encode_and_decode_through_it() -> None:
    class Packet(packet.Packet):  # what socketio.Server(json=wirejson) sets on its packet class
        json = wirejson

    event = Packet(encoded_packet='2["set",{"name":"\u00e9","n":12345678901234567890123}]')
    assert event.data == ["set", {"name": "\u00e9", "n": 12345678901234567890123}]
    assert Packet(packet.ACK, data=[{"ok": True}], id=7).encode() == '37[{"ok":true}]'


def test_make_app_encodes_packets_with_it_unless_told_not_to() -> None:
    from tests.helpers import SECRET
    from wsgisession import make_app

    try:
        assert make_app(secret=SECRET, type="memory").sio.packet_class.json is wirejson
        assert make_app(secret=SECRET, type="memory", fast_json=False).sio.packet_class.json is engineio_json
        own = make_app(secret=SECRET, type="memory", socketio_options={"json": json})
        assert own.sio.packet_class.json is json
    finally:
        make_app(secret=SECRET, type="memory")  # python-socketio keeps it on its packet class, for the process
