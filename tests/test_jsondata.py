"""Session data as JSON: snapshots, what is flat, what is exact, JSON sameness."""
from __future__ import annotations

import datetime
import enum
import json
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import Color
from wsgisession import jsondata


class Level(enum.IntEnum):
    HIGH = 3


def test_snapshots_tell_json_types_apart() -> None:
    assert jsondata.snapshot({"n": 1}) != jsondata.snapshot({"n": 1.0})
    assert jsondata.snapshot({"n": 1}) != jsondata.snapshot({"n": True})
    assert jsondata.snapshot({"n": [1]}) != jsondata.snapshot({"n": [True]})
    assert jsondata.snapshot({"a": 1, "b": 2}) == jsondata.snapshot({"a": 1, "b": 2})


def test_snapshot_is_none_for_what_orjson_refuses() -> None:
    assert jsondata.snapshot({"big": 2**80}) is None
    assert jsondata.snapshot({1: "non-str key"}) is None  # type: ignore[dict-item]
    assert jsondata.snapshot({"when": datetime.datetime(2026, 1, 1)}) is None


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
    assert jsondata.is_flat(data)


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
    assert not jsondata.is_flat({"value": value})
    assert not jsondata.is_flat({"a": 1, "value": value, "b": "x"})


def test_is_exact_for_json_data() -> None:
    samples: list[dict[str, Any]] = [{}, {"n": 1, "f": 1.0, "t": True}, {"nested": {"a": [1, 2.5, None, "x", {"b": False}]}}]
    for data in samples:
        assert jsondata.is_exact(data, jsondata.snapshot(data))


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
    assert not jsondata.is_exact(data, jsondata.snapshot(data))


def test_is_exact_compares_as_equal_values_where_both_encoders_write_the_same_text() -> None:
    # an IntEnum member equals its int and both encoders write it as 3: the record is the same
    data = {"value": Level.HIGH}
    assert jsondata.is_exact(data, jsondata.snapshot(data))
    assert jsondata.snapshot(data) == json.dumps(data, separators=(",", ":")).encode()
    assert not jsondata.is_flat(data)  # so the record cache decodes it again rather than copy it


@pytest.mark.parametrize("data", [{"big": 2**70}, {"n": 1}, {}, {"nested": [2**80]}])
def test_is_exact_is_false_without_a_snapshot(data: dict[str, Any]) -> None:
    assert not jsondata.is_exact(data, None)
    assert jsondata.snapshot({"big": 2**70}) is None


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
    snap = jsondata.snapshot(data)
    if jsondata.is_exact(data, snap):
        assert snap is not None
        back = orjson.loads(snap)
        assert back == data
        assert json.dumps(back) == json.dumps(data)
    if jsondata.is_flat(data):
        assert jsondata.is_exact(data, snap)  # JSON scalars within 64 bits: always exact


def test_same_json_tells_apart_what_json_stores_differently() -> None:
    assert jsondata.same_json({"a": [1, "x"]}, {"a": [1, "x"]}) and jsondata.same_json(1.5, 1.5)
    assert not jsondata.same_json(1, 1.0) and not jsondata.same_json(1, True) and not jsondata.same_json(0, False)
    assert not jsondata.same_json([1], [True]) and not jsondata.same_json({"a": 1}, {"a": 1.0})  # == says equal
    assert not jsondata.same_json({"a": {1, 2}}, {"a": {1, 2}})  # not JSON: never "the same as stored"
