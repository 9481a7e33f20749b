"""The JSON module Socket.IO packets are encoded with: orjson, where its result is the same.

python-socketio and Engine.IO take a ``json`` module with ``dumps`` and
``loads``; their default (``engineio.json``) is the standard library's, with
integers of more than 100 digits refused (parsing them costs quadratic time).
Every event and acknowledgement goes through it: ``dumps(data,
separators=(",", ":"))`` builds a new encoder on each call (6 us for a short
acknowledgement here, orjson 0.6 us), and ``loads`` of a short event costs
2.7 us (orjson 0.4 us). This module gives the same results faster::

    socketio.Server(async_mode="gevent", json=wirejson)   # what make_app does (fast_json=True)

- :func:`loads` reads with orjson, and hands to ``engineio.json.loads`` any text
  with a run of 19 or more digits (orjson would read an integer past 64 bits as
  a float and lose digits; the 100-digit limit is kept that way) and any text
  orjson refuses (``NaN``, lone surrogates, nesting past 1024 levels), so a
  packet decodes exactly as it would have, or fails as it would have.
- :func:`dumps` writes with orjson when asked for compact separators, as
  python-socketio does; anything orjson would write differently or not at all
  (integers past 64 bits, keys that are not strings, subclasses of ``str``,
  ``int``, ``dict`` and ``list``, datetimes and dataclasses, which the standard
  library refuses) is written by the standard library. Where the two differ:
  text is sent as UTF-8 instead of ``\\u`` escapes (the same string once
  decoded), NaN and infinities become ``null`` (the standard library writes
  ``NaN``, which JavaScript's ``JSON.parse`` refuses, so the client drops the
  packet), and UUIDs and plain ``Enum`` members are written as strings and
  their values instead of raising ``TypeError``.

python-socketio sets the module on its packet classes, so it applies to every
server and client of the process.
"""
from __future__ import annotations

from typing import Any

import orjson
from engineio import json as _engineio_json

from .jsondata import LONG_NUMBER as _LONG_NUMBER, PASSTHROUGH as _OPTIONS

_COMPACT = (",", ":")


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(obj, **kwargs)``, by orjson when the result means the same."""
    if kwargs.get("separators") == _COMPACT and len(kwargs) == 1:
        try:
            return orjson.dumps(obj, option=_OPTIONS).decode("utf-8")
        except TypeError:  # orjson.JSONEncodeError: what orjson does not write as the standard library would
            pass
    return str(_engineio_json.dumps(obj, **kwargs))


def loads(s: str | bytes, **kwargs: Any) -> Any:
    """``engineio.json.loads(s, **kwargs)``, by orjson when it reads the same."""
    if kwargs or not isinstance(s, str) or _LONG_NUMBER.search(s) is not None:
        return _engineio_json.loads(s, **kwargs)
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:  # NaN, lone surrogates, deep nesting...: as the standard library reads it
        return _engineio_json.loads(s)
