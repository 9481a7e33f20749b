"""The JSON codec: orjson where it is exact, the strict stdlib encoder otherwise."""
from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from typing import Any

import pytest

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
