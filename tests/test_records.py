"""Records: their text format (orjson where exact, the strict encoder otherwise), the decoded-record cache."""
from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import SECRET, Color, saved_session
from wsgisession import jsondata, records
from wsgisession.ids import Fingerprint
from wsgisession.manager import SessionManager
from wsgisession.records import RecordCache
from wsgisession.session import SharedSession
from wsgisession.store import Store


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


def encode(data: dict[str, Any], **options: Any) -> str:
    return records.encode_record(1.5, 2.5, data, **options)


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
    assert records.decode_record(text) == expected
    assert not text.endswith(',"exact":true}')


@pytest.mark.parametrize("number", [2**63 - 1, 2**64 - 1, 2**64 + 1, 2**80 + 1, -(2**63) - 1, 10**30 + 7])
def test_integers_past_64_bits_are_read_back_exactly(number: int) -> None:
    text = encode({"big": number, "nested": [number]})
    data = records.decode_record(text)["data"]
    assert data == {"big": number, "nested": [number]}
    assert type(data["big"]) is int and type(data["nested"][0]) is int


def test_long_digit_runs_in_strings_and_floats_read_back() -> None:
    data = {"s": "12345678901234567890", "f": 0.12345678901234567, "t": (1,)}
    assert records.decode_record(encode(data))["data"] == {"s": "12345678901234567890", "f": 0.12345678901234567, "t": [1]}


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
    assert encode({"n": 2}, snapshot_text=jsondata.snapshot({"n": 2})).endswith('"data":{"n":2}}')


@pytest.mark.parametrize("text", ["[]", '"x"', "1", "{", ""])
def test_decode_record_refuses_what_is_not_a_json_object(text: str) -> None:
    with pytest.raises(ValueError):
        records.decode_record(text)


# -- the decoded-record cache ------------------------------------------------


def as_json(value: Any) -> str:
    """Types count: 1, 1.0 and True differ, nested too."""
    return json.dumps(value, sort_keys=True)


def put(cache: RecordCache, session_id: str, text: str, data: dict[str, Any], **options: Any) -> bytes:
    snap = jsondata.snapshot(data)
    assert snap is not None
    cache.put(session_id, text, 1.5, 2.5, data, snap, **options)
    return snap


# -- RecordCache on its own ------------------------------------------------
def test_a_hit_returns_the_parts_put() -> None:
    cache = RecordCache()
    data = {"user": "ann", "n": 1, "f": 1.5, "ok": True, "none": None}
    snap = put(cache, "a", "text-a", data)
    found = cache.get("a", "text-a")
    assert found is not None
    created, accessed, got, got_snap, flat = found
    assert (created, accessed, got_snap, flat) == (1.5, 2.5, snap, True)
    assert got == data and as_json(got) == as_json(data)


def test_a_hit_of_nested_data_returns_the_parts_put() -> None:
    cache = RecordCache()
    data = {"list": [1, 2.0, True, None, "x"], "dict": {"a": {"b": [1]}}, "n": 1}
    snap = put(cache, "a", "text-a", data)
    found = cache.get("a", "text-a")
    assert found is not None
    assert found[0:2] == (1.5, 2.5) and found[3] == snap and found[4] is False
    assert as_json(found[2]) == as_json(data)


def test_flat_data_is_a_fresh_dict_each_time() -> None:
    cache = RecordCache()
    data = {"user": "ann", "n": 1}
    put(cache, "a", "text-a", data)
    data["user"] = "bob"  # the dict given to put() changes afterwards
    data["new"] = 1
    first = cache.get("a", "text-a")
    assert first is not None
    assert first[2] == {"user": "ann", "n": 1}
    first[2]["n"] = 99  # the dict handed out changes
    del first[2]["user"]
    second = cache.get("a", "text-a")
    assert second is not None
    assert second[2] == {"user": "ann", "n": 1}
    assert second[2] is not first[2]


def test_nested_data_is_a_deep_fresh_copy_each_time() -> None:
    cache = RecordCache()
    data: dict[str, Any] = {"list": [1, 2], "dict": {"a": [1], "b": {"c": 1}}}
    put(cache, "a", "text-a", data)
    data["list"].append(3)  # nested values of the dict given to put() change afterwards
    data["dict"]["a"].append(2)
    data["dict"]["b"]["c"] = 2
    expected = {"list": [1, 2], "dict": {"a": [1], "b": {"c": 1}}}
    first = cache.get("a", "text-a")
    assert first is not None
    assert as_json(first[2]) == as_json(expected)
    first[2]["list"].append(4)  # nested values of the copy handed out change
    first[2]["dict"]["a"].clear()
    first[2]["dict"]["b"]["c"] = 3
    first[2]["dict"]["x"] = 1
    second = cache.get("a", "text-a")
    assert second is not None
    assert as_json(second[2]) == as_json(expected)
    assert second[2]["list"] is not first[2]["list"]


def test_flat_given_wrongly_as_false_still_hands_out_the_data() -> None:
    cache = RecordCache()
    put(cache, "a", "text-a", {"n": 1}, flat=False)
    found = cache.get("a", "text-a")
    assert found is not None and as_json(found[2]) == as_json({"n": 1})


@pytest.mark.parametrize("other", ["text-b", "text-", "text-aa", "Text-a", "", "text-a "])
def test_another_text_is_a_miss(other: str) -> None:
    cache = RecordCache()
    put(cache, "a", "text-a", {"n": 1})
    assert cache.get("a", other) is None
    assert cache.get("a", "text-a") is not None  # a miss leaves the entry


def test_an_unknown_id_is_a_miss() -> None:
    cache = RecordCache()
    assert cache.get("a", "text-a") is None
    put(cache, "a", "text-a", {"n": 1})
    assert cache.get("b", "text-a") is None


def test_a_record_text_differing_by_one_character_is_a_miss() -> None:
    cache = RecordCache()
    text = records.encode_record(1.5, 2.5, {"n": 1})
    other = records.encode_record(1.5, 2.5, {"n": 2})
    assert len(text) == len(other)
    put(cache, "a", text, {"n": 1})
    assert cache.get("a", other) is None


def test_put_without_a_snapshot_forgets() -> None:
    cache = RecordCache()
    put(cache, "a", "text-a", {"n": 1})
    put(cache, "b", "text-b", {"n": 2})
    cache.put("a", "text-a2", 1.5, 2.5, {"big": 2**70}, None)
    assert cache.get("a", "text-a") is None and cache.get("a", "text-a2") is None
    assert len(cache) == 1 and cache.get("b", "text-b") is not None
    cache.put("c", "text-c", 1.5, 2.5, {"n": 3}, None)  # an id not cached: nothing stored
    assert len(cache) == 1 and cache.get("c", "text-c") is None


def test_a_text_longer_than_max_text_is_not_stored() -> None:
    cache = RecordCache(max_text=10)
    put(cache, "a", "x" * 11, {"n": 1})
    assert len(cache) == 0 and cache.get("a", "x" * 11) is None
    put(cache, "b", "y" * 10, {"n": 1})  # exactly max_text: stored
    assert cache.get("b", "y" * 10) is not None
    put(cache, "b", "z" * 11, {"n": 2})  # a longer text for a cached id: forgets it
    assert len(cache) == 0
    assert cache.get("b", "y" * 10) is None and cache.get("b", "z" * 11) is None


def test_forget() -> None:
    cache = RecordCache()
    put(cache, "a", "text-a", {"n": 1})
    put(cache, "b", "text-b", {"n": 2})
    cache.forget("a")
    assert cache.get("a", "text-a") is None and len(cache) == 1
    cache.forget("a")  # twice, and an unknown id: no error
    cache.forget("unknown")
    assert cache.get("b", "text-b") is not None


def test_bounded_dropping_the_least_recently_stored_first() -> None:
    cache = RecordCache(entries=3)
    for i in range(5):
        put(cache, f"id{i}", f"text{i}", {"i": i})
    assert len(cache) == 3
    assert cache.get("id0", "text0") is None and cache.get("id1", "text1") is None
    for i in (2, 3, 4):
        found = cache.get(f"id{i}", f"text{i}")
        assert found is not None and found[2] == {"i": i}


def test_re_putting_an_id_refreshes_it() -> None:
    cache = RecordCache(entries=3)
    for name in "abc":
        put(cache, name, f"text-{name}", {"n": name})
    put(cache, "a", "text-a2", {"n": "a2"})  # a is now the most recently stored
    assert len(cache) == 3
    put(cache, "d", "text-d", {"n": "d"})  # drops b, the least recently stored
    assert len(cache) == 3
    assert cache.get("b", "text-b") is None
    assert cache.get("a", "text-a") is None  # replaced by its new text
    found = cache.get("a", "text-a2")
    assert found is not None and found[2] == {"n": "a2"}
    assert cache.get("c", "text-c") is not None and cache.get("d", "text-d") is not None
    put(cache, "e", "text-e", {"n": "e"})  # then c, then a
    assert cache.get("c", "text-c") is None and cache.get("a", "text-a2") is not None
    put(cache, "f", "text-f", {"n": "f"})
    assert cache.get("a", "text-a2") is None and len(cache) == 3


def test_a_hit_does_not_refresh_an_entry() -> None:
    """Least recently *stored*: reading an entry does not keep it."""
    cache = RecordCache(entries=2)
    put(cache, "a", "text-a", {"n": 1})
    put(cache, "b", "text-b", {"n": 2})
    assert cache.get("a", "text-a") is not None
    put(cache, "c", "text-c", {"n": 3})
    assert cache.get("a", "text-a") is None and cache.get("b", "text-b") is not None


# -- through the manager -----------------------------------------------------
def overwrite(manager: SessionManager, session_id: str, data: dict[str, Any]) -> str:
    """Write another record as another process would, past this manager."""
    text = records.encode_record(1000.0, manager.clock(), data)
    manager.store.write(session_id, text)
    return text


def test_a_save_is_cached_and_loads_hand_out_fresh_copies(manager: SessionManager) -> None:
    session = saved_session(manager, user="ann", nested={"list": [1, 2]})
    text = manager.store.read(session.id)
    assert text is not None
    found = manager.records.cache.get(session.id, text)
    assert found is not None and as_json(found[2]) == as_json(manager.records.decode(text).data)
    first, first_text = manager.load(session.id)
    assert first_text == text
    first.data["nested"]["list"].append(3)
    first.data["user"] = "bob"
    second, _ = manager.load(session.id)
    assert as_json(second.data) == as_json({"user": "ann", "nested": {"list": [1, 2]}})
    assert SharedSession.open(manager, session.id).to_dict() == {"user": "ann", "nested": {"list": [1, 2]}}


def test_a_load_of_flat_data_hands_out_fresh_copies(manager: SessionManager) -> None:
    session = saved_session(manager, user="ann", n=1)
    first, _ = manager.load(session.id)
    first.data["user"] = "bob"
    del first.data["n"]
    second, _ = manager.load(session.id)
    assert second.data == {"user": "ann", "n": 1}
    session["n"] = 2  # the saved session's own dict changes afterwards, unsaved
    third, _ = manager.load(session.id)
    assert third.data == {"user": "ann", "n": 1}


@pytest.mark.parametrize(
    "old, new",
    [
        ({"n": 1}, {"n": 2}),  # the same length: one character differs
        ({"user": "ann"}, {"user": "bob", "role": "admin"}),
        ({"nested": {"a": [1]}}, {"nested": {"a": [1, 2]}}),
        ({"n": 1}, {"n": 1.0}),
        ({"n": 1}, {}),
    ],
)
def test_a_record_written_meanwhile_is_seen_not_the_cached_one(
    manager: SessionManager, old: dict[str, Any], new: dict[str, Any]
) -> None:
    session = saved_session(manager, **old)
    assert len(manager.records.cache) == 1
    manager.load(session.id)  # a cached load first
    overwrite(manager, session.id, new)
    record, _ = manager.load(session.id)
    assert as_json(record.data) == as_json(new)
    found = manager.read(session.id)
    assert found is not None and as_json(found.data) == as_json(new)
    fresh = SharedSession(manager, session.id, is_new=False)
    assert as_json(fresh.to_dict()) == as_json(new)
    assert as_json(SharedSession.open(manager, session.id).to_dict()) == as_json(new)


def test_a_save_after_a_write_meanwhile_merges_into_the_new_record(manager: SessionManager) -> None:
    session = saved_session(manager, a=1, b=1)
    overwrite(manager, session.id, {"a": 1, "b": 2, "c": 3})
    session["a"] = 5
    assert session.save()
    record, _ = manager.load(session.id)
    assert record.data == {"a": 5, "b": 2, "c": 3}
    assert dict(session) == {"a": 5, "b": 2, "c": 3}


def test_another_process_writing_the_file_store_is_seen(make_manager: Callable[..., SessionManager]) -> None:
    ours, theirs = make_manager("file"), make_manager("file")  # one data_dir: two processes
    session = saved_session(ours, n=1, nested={"x": [1]})
    other = SharedSession.open(theirs, session.id)
    other["n"] = 2
    other["nested"]["x"].append(2)
    assert other.save()
    record, _ = ours.load(session.id)
    assert as_json(record.data) == as_json({"n": 2, "nested": {"x": [1, 2]}})
    assert SharedSession.open(ours, session.id)["n"] == 2


def test_ending_and_rotating_forget_the_cached_record(manager: SessionManager) -> None:
    session = saved_session(manager, n=1)
    old_id, old_text = session.id, manager.store.read(session.id)
    assert old_text is not None and manager.records.cache.get(old_id, old_text) is not None
    session.regenerate_id()
    assert manager.records.cache.get(old_id, old_text) is None and len(manager.records.cache) == 1
    assert manager.read(old_id) is None
    new_text = manager.store.read(session.id)
    assert new_text is not None and manager.records.cache.get(session.id, new_text) is not None
    session.delete()
    assert manager.records.cache.get(session.id, new_text) is None and len(manager.records.cache) == 0


def test_an_integer_past_64_bits_round_trips_exactly(manager: SessionManager) -> None:
    session = saved_session(manager, big=2**70, nested=[2**70], n=1)
    text = manager.store.read(session.id)
    assert text is not None and text.endswith(',"exact":true}')
    assert manager.records.cache.get(session.id, text) is None  # its snapshot is not exact: not cached
    for _ in range(2):
        record, _ = manager.load(session.id)
        assert record.data == {"big": 2**70, "nested": [2**70], "n": 1}
        assert type(record.data["big"]) is int and type(record.data["nested"][0]) is int
        assert manager.records.cache.get(session.id, text) is None
    fresh = SharedSession.open(manager, session.id)
    assert fresh["big"] == 2**70 and type(fresh["big"]) is int
    fresh["n"] = 2  # a save of another key keeps it exact
    assert fresh.save()
    record, _ = manager.load(session.id)
    assert record.data == {"big": 2**70, "nested": [2**70], "n": 2} and type(record.data["big"]) is int


def test_an_exact_record_written_meanwhile_is_seen(manager: SessionManager) -> None:
    session = saved_session(manager, big=1)  # cached: flat
    text = overwrite(manager, session.id, {"big": 2**70 + 1})
    assert text.endswith(',"exact":true}')
    record, _ = manager.load(session.id)
    assert record.data == {"big": 2**70 + 1} and type(record.data["big"]) is int
    overwrite(manager, session.id, {"big": 2**70})
    record, _ = manager.load(session.id)
    assert record.data == {"big": 2**70} and type(record.data["big"]) is int
    assert SharedSession(manager, session.id, is_new=False)["big"] == 2**70
    overwrite(manager, session.id, {"big": 3})  # and back to a cacheable record
    record, _ = manager.load(session.id)
    assert record.data == {"big": 3}


def test_a_value_orjson_writes_as_another_type_is_not_cached_as_it(manager: SessionManager) -> None:
    session = saved_session(manager, pair=(1, 2))  # stored as a list, like the stdlib does
    text = manager.store.read(session.id)
    assert text is not None and manager.records.cache.get(session.id, text) is None
    record, _ = manager.load(session.id)
    assert record.data == {"pair": [1, 2]}
    again, _ = manager.load(session.id)  # read back from the text, it is exact: cached now
    assert again.data == {"pair": [1, 2]} and again.data is not record.data


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.integers()  # past 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
session_data = st.dictionaries(st.text(max_size=4), values, max_size=4)


@settings(max_examples=100, deadline=None)
@given(session_data, session_data)
def test_loads_always_give_what_the_stored_text_decodes_to(first: dict[str, Any], second: dict[str, Any]) -> None:
    manager = SessionManager(store=Store(type="memory"), fingerprint=Fingerprint(secret=SECRET))
    first = {**first, "_key_": 0}  # never empty: the first save writes
    session = SharedSession.new(manager)
    session.update(first)
    assert session.save()
    for data in (first, second):
        if data is second:
            overwrite(manager, session.id, second)
        for _ in range(2):  # a miss, then a hit if cached
            text = manager.store.read(session.id)
            assert text is not None
            record, loaded_text = manager.load(session.id)
            assert loaded_text == text
            expected = records.decode_record(text)["data"]
            assert as_json(record.data) == as_json(expected) == as_json(data)
            record.data.clear()  # never leaks into the next load
