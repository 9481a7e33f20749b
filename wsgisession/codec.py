"""The JSON codec of session records: orjson where it is exact, the stdlib where it is not.

Session data is JSON and nothing else (no pickle anywhere). A record is the
text ``{"created": t, "accessed": t, "data": {...}}``.

Writing is strict: a value JSON cannot hold (a datetime, a set, NaN, a UUID,
an object) raises ``TypeError`` or ``ValueError``. orjson writes the text when
its output decodes back to exactly the data it was given (it would quietly
turn UUIDs, enum members and NaN into other values); otherwise the stdlib
encoder writes it (it accepts tuples and integers past 64 bits, and refuses
the rest).

Reading uses orjson, except for records marked ``"exact": true``: orjson
reads an integer past 64 bits as a float and loses digits, so a record whose
data holds a run of 19 digits or more carries that mark and is read by the
stdlib.

:func:`snapshot` is the fast, non-strict form that change tracking compares;
:func:`is_exact` tells whether a snapshot decodes back to exactly its data.
"""
from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Types orjson would serialize on its own but JSON does not hold are passed
# through to an error (and so to the strict encoder).
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS

# The strict encoder (built once): compact, UTF-8, no NaN or Infinity.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

# The exact types of values whose orjson form always decodes back to themselves (finite floats too).
_SCALARS = frozenset({str, int, bool, type(None)})

_dumps, _Fragment = orjson.dumps, orjson.Fragment

_LONG_NUMBER = re.compile(r"[0-9]{19}")
_EXACT_END = '},"exact":true}'  # data is an object: its "}" comes first, so a nested key never matches


def snapshot(data: dict[str, Any]) -> bytes | None:
    """A serialized snapshot of ``data`` to compare with a later one; ``None`` if orjson refuses it."""
    try:
        return orjson.dumps(data, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return None


def is_flat(data: dict[str, Any]) -> bool:
    """Whether every value is a str, int, bool, None or finite float (exactly these types)."""
    scalars = _SCALARS
    for value in data.values():
        if type(value) not in scalars and (type(value) is not float or value - value != 0.0):
            return False  # a container, an object, a subclass, NaN or an infinity
    return True


def is_exact(data: dict[str, Any], snapshot_text: bytes | None) -> bool:
    """Whether ``snapshot_text`` (:func:`snapshot` of ``data``) decodes back to data equal to ``data``.

    orjson writes UUIDs, plain enum members and tuples as other values, and NaN
    as null; an integer past 64 bits makes :func:`snapshot` refuse (``None``).
    Equal, not identical: an ``IntEnum`` member decodes as its ``int``, which is
    also what the strict encoder writes for it.
    """
    if snapshot_text is None:
        return False
    return is_flat(data) or orjson.loads(snapshot_text) == data


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON would store them: ``1``, ``1.0`` and ``True`` differ, nested too."""
    if type(a) is not type(b) or a != b:
        return False
    if isinstance(a, (dict, list)):  # == says 1 == True inside containers
        try:
            return json.dumps(a) == json.dumps(b)
        except (TypeError, ValueError):
            return False
    return True


def strict(value: Any) -> str:
    """Encode one value with the strict encoder (to find which value JSON cannot hold)."""
    return _ENCODER.encode(value)


def encode_record(
    created: float, accessed: float, data: dict[str, Any], *, snapshot_text: bytes | None = None,
    exact: bool | None = None,
) -> str:
    """A record's text (strict).

    ``snapshot_text`` is :func:`snapshot` of ``data`` if known, ``exact``
    :func:`is_exact` of the two if known.
    """
    text = snapshot_text if snapshot_text is not None else snapshot(data)
    if exact if exact is not None else is_exact(data, text):
        assert text is not None  # the data is written as it is: serialized once
        return encode_exact(created, accessed, text)
    data_text = _ENCODER.encode(data)  # raises TypeError or ValueError for what JSON cannot hold
    record: dict[str, Any] = {"created": created, "accessed": accessed, "data": orjson.Fragment(data_text)}
    if _LONG_NUMBER.search(data_text) is not None:
        record["exact"] = True  # the last key: see _EXACT_END
    return orjson.dumps(record).decode("utf-8")


def encode_exact(created: float, accessed: float, snapshot_text: bytes) -> str:
    """A record's text from an exact snapshot of its data (:func:`is_exact`): the data is not serialized again."""
    return _dumps({"created": created, "accessed": accessed, "data": _Fragment(snapshot_text)}).decode("utf-8")


def decode_record(text: str) -> dict[str, Any]:
    """Parse a record's text (``ValueError`` if it is not JSON or not an object)."""
    raw = json.loads(text) if text.endswith(_EXACT_END) else orjson.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("a session record is a JSON object")
    return raw
