"""Session data as JSON: snapshots to compare, what is exact, what is strict.

Session data is JSON and nothing else (no pickle anywhere). Two encoders:

- orjson makes :func:`snapshot`: the fast, non-strict serialized form that
  change tracking compares and that becomes a record's data when it is exact
  (:func:`is_exact`: it decodes back to exactly the data it was given; orjson
  would quietly turn UUIDs, enum members and NaN into other values);
- the standard library's strict encoder (:func:`strict`) writes everything
  else and refuses what JSON cannot hold (a datetime, a set, NaN, an object)
  with ``TypeError`` or ``ValueError``.

orjson reads an integer past 64 bits as a float and loses digits, so a text
with a run of :data:`LONG_NUMBER` digits is read by the standard library
(records mark themselves for it, :mod:`wsgisession.records`; so do Socket.IO
packets, :mod:`wsgisession.wirejson`).
"""
from __future__ import annotations

import json
import re
from typing import Any

import orjson

#: orjson options: types orjson would serialize on its own but JSON does not hold go to an error
#: (and so to the strict encoder)
PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS

#: 19 digits in a row: an integer that may be past 64 bits, which orjson would read as a float
LONG_NUMBER = re.compile(r"[0-9]{19}")

#: the strict encoder (built once): compact, UTF-8, no NaN or Infinity
ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

# The exact types of values whose orjson form always decodes back to themselves (finite floats too).
_SCALARS = frozenset({str, int, bool, type(None)})


def snapshot(data: dict[str, Any]) -> bytes | None:
    """A serialized snapshot of ``data`` to compare with a later one; ``None`` if orjson refuses it."""
    try:
        return orjson.dumps(data, option=PASSTHROUGH)
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
    return ENCODER.encode(value)
