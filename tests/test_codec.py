"""The JSON codec: orjson where it is exact, the strict stdlib encoder otherwise."""
from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgisession import codec


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


def encode(data: dict[str, Any], **options: Any) -> str:
    return codec.encode_record(1.5, 2.5, data, **options)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"user": "ann", "n": 1, "f": 1.5, "ok": True, "none": None, "nested": {"a": [1, 2, {"b": "c"}]}},
        {"unicode": "héllo ✓ \u2028", "neg": -0.0, "small": 1e-300},
        {"tuple": (1, 2)},  # stored as a list, like the stdlib does
        {"level": Level.HIGH},  # an int subclass: stored as 3, like the stdlib does
        {"exact": True, "nested": {"exact": True}},  # keys that look like the record's mark
    ],
)
def test_records_round_trip_what_json_holds(data: dict[str, Any]) -> None:
    text = encode(data)
    expected = {"created": 1.5, "accessed": 2.5, "data": json.loads(json.dumps(data))}
    assert json.loads(text) == expected
    assert codec.decode_record(text) == expected
    assert not text.endswith(',"exact":true}')


@pytest.mark.parametrize("number", [2**63 - 1, 2**64 - 1, 2**64 + 1, 2**80 + 1, -(2**63) - 1, 10**30 + 7])
def test_integers_past_64_bits_are_read_back_exactly(number: int) -> None:
    text = encode({"big": number, "nested": [number]})
    data = codec.decode_record(text)["data"]
    assert data == {"big": number, "nested": [number]}
    assert type(data["big"]) is int and type(data["nested"][0]) is int


def test_long_digit_runs_in_strings_and_floats_read_back() -> None:
    data = {"s": "12345678901234567890", "f": 0.12345678901234567, "t": (1,)}
    assert codec.decode_record(encode(data))["data"] == {"s": "12345678901234567890", "f": 0.12345678901234567, "t": [1]}


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        uuid.UUID(int=1),  # orjson would quietly write a string
        Color.RED,  # orjson would quietly write "red"
        datetime.datetime(2026, 1, 1),
        datetime.date(2026, 1, 1),
        Point(1),
        {1, 2},
        object(),
        b"bytes",
    ],
)
def test_encode_refuses_what_json_cannot_hold(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        encode({"value": value})
    with pytest.raises((TypeError, ValueError)):
        encode({"nested": [{"value": value}]})


def test_a_given_snapshot_is_trusted_only_if_it_decodes_back_to_the_data() -> None:
    data = {"id": uuid.UUID(int=1)}
    wrong = b'{"id":"00000000-0000-0000-0000-000000000001"}'
    with pytest.raises(TypeError):
        encode(data, snapshot_text=wrong)
    assert encode({"n": 2}, snapshot_text=codec.snapshot({"n": 2})).endswith('"data":{"n":2}}')


def test_snapshots_tell_json_types_apart() -> None:
    assert codec.snapshot({"n": 1}) != codec.snapshot({"n": 1.0})
    assert codec.snapshot({"n": 1}) != codec.snapshot({"n": True})
    assert codec.snapshot({"n": [1]}) != codec.snapshot({"n": [True]})
    assert codec.snapshot({"a": 1, "b": 2}) == codec.snapshot({"a": 1, "b": 2})


def test_snapshot_is_none_for_what_orjson_refuses() -> None:
    assert codec.snapshot({"big": 2**80}) is None
    assert codec.snapshot({1: "non-str key"}) is None  # type: ignore[dict-item]
    assert codec.snapshot({"when": datetime.datetime(2026, 1, 1)}) is None


@pytest.mark.parametrize("text", ["[]", '"x"', "1", "{", ""])
def test_decode_record_refuses_what_is_not_a_json_object(text: str) -> None:
    with pytest.raises(ValueError):
        codec.decode_record(text)


# -- is_flat and is_exact ------------------------------------------------------
class Text(str):
    pass


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"s": "ann", "i": 1, "big": 2**70, "t": True, "f": False, "none": None},
        {"f": 1.5, "neg": -0.0, "small": 1e-300, "max": 1.7976931348623157e308},
    ],
)
def test_is_flat_for_scalars_of_exactly_these_types(data: dict[str, Any]) -> None:
    assert codec.is_flat(data)


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        [1, 2],
        [],
        {"a": 1},
        {},
        Text("x"),  # a str subclass
        Level.HIGH,  # an int subclass
        Color.RED,
        (1, 2),
        uuid.UUID(int=1),
        b"bytes",
        datetime.date(2026, 1, 1),
    ],
)
def test_is_flat_is_false_for_anything_else(value: Any) -> None:
    assert not codec.is_flat({"value": value})
    assert not codec.is_flat({"a": 1, "value": value, "b": "x"})


def test_is_exact_for_json_data() -> None:
    samples: list[dict[str, Any]] = [{}, {"n": 1, "f": 1.0, "t": True}, {"nested": {"a": [1, 2.5, None, "x", {"b": False}]}}]
    for data in samples:
        assert codec.is_exact(data, codec.snapshot(data))


@pytest.mark.parametrize(
    "value",
    [
        uuid.UUID(int=1),  # written as a str
        Color.RED,  # written as "red"
        (1, 2),  # written as a list
        float("nan"),  # written as null
        [uuid.UUID(int=1)],
        {"inner": (1,)},
        [float("nan")],
    ],
)
def test_is_exact_is_false_when_orjson_writes_another_value(value: Any) -> None:
    data = {"value": value}
    assert not codec.is_exact(data, codec.snapshot(data))


def test_is_exact_compares_as_equal_values_where_both_encoders_write_the_same_text() -> None:
    # an IntEnum member equals its int and both encoders write it as 3: the record is the same
    data = {"value": Level.HIGH}
    assert codec.is_exact(data, codec.snapshot(data))
    assert codec.snapshot(data) == json.dumps(data, separators=(",", ":")).encode()
    assert not codec.is_flat(data)  # so the record cache decodes it again rather than copy it


@pytest.mark.parametrize("data", [{"big": 2**70}, {"n": 1}, {}, {"nested": [2**80]}])
def test_is_exact_is_false_without_a_snapshot(data: dict[str, Any]) -> None:
    assert not codec.is_exact(data, None)
    assert codec.snapshot({"big": 2**70}) is None


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=10)  # no lone surrogates
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=5), json_values, max_size=5))
def test_an_exact_snapshot_decodes_back_to_the_data_with_its_types(data: dict[str, Any]) -> None:
    snap = codec.snapshot(data)
    if codec.is_exact(data, snap):
        assert snap is not None
        back = orjson.loads(snap)
        assert back == data
        assert json.dumps(back) == json.dumps(data)
    if codec.is_flat(data):
        assert codec.is_exact(data, snap)  # JSON scalars within 64 bits: always exact


def test_same_json_tells_apart_what_json_stores_differently() -> None:
    assert codec.same_json({"a": [1, "x"]}, {"a": [1, "x"]}) and codec.same_json(1.5, 1.5)
    assert not codec.same_json(1, 1.0) and not codec.same_json(1, True) and not codec.same_json(0, False)
    assert not codec.same_json([1], [True]) and not codec.same_json({"a": 1}, {"a": 1.0})  # == says equal
    assert not codec.same_json({"a": {1, 2}}, {"a": {1, 2}})  # not JSON: never "the same as stored"
