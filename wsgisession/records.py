"""Session records: the :class:`Record` type, its text format, the decoded-record cache.

A record is the JSON text ``{"created": t, "accessed": t, "data": {...}}``
(``"exact": true`` last, when its data holds a run of 19 digits: then the
standard library reads it, which keeps integers past 64 bits exact). Data is
written by orjson when its snapshot is exact (:func:`wsgisession.jsondata.is_exact`),
by the strict encoder otherwise; a value JSON cannot hold raises
:class:`~wsgisession.errors.SessionValueError`, and nothing is written.

:class:`Records` turns texts into records and back for the manager, with a
:class:`RecordCache` of the decoded form of the last text it read or wrote per
session: every load still reads the store, and a text that differs from the
cached one (written by another process or host) is decoded as usual, so
nothing stale is ever handed out.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable

import orjson

from .errors import SessionValueError
from .jsondata import ENCODER, LONG_NUMBER, is_exact, is_flat, snapshot, strict

security_log = logging.getLogger("wsgisession.security")

_dumps, _Fragment = orjson.dumps, orjson.Fragment  # module globals: no attribute lookup per save

_EXACT_END = '},"exact":true}'  # data is an object: its "}" comes first, so a nested key never matches

_Entry = tuple[str, float, float, "dict[str, Any] | None", bytes]


class Record:
    """A decoded session record.

    ``snapshot`` and ``flat`` describe ``data`` as it was last read or
    written: :func:`~wsgisession.jsondata.snapshot` of it if that is exact
    (else ``None``), and whether it is scalars only
    (:func:`~wsgisession.jsondata.is_flat`). They are stale once ``data`` changes.
    Built with positional arguments on the hot path: keywords cost ~1,600
    instructions more per update (benchmarks/inprocess.py --callgrind).
    """

    __slots__ = ("created", "accessed", "data", "snapshot", "flat")

    def __init__(
        self, created: float, accessed: float, data: dict[str, Any], snapshot: bytes | None = None, flat: bool = False
    ) -> None:
        self.created = created
        self.accessed = accessed
        self.data = data
        self.snapshot = snapshot
        self.flat = flat


class _Prebuilt(Record):
    """Speed: a :class:`Record` made without running ``__init__``; :meth:`Records.parse` sets every slot.

    Half the cost of ``Record(...)`` on a cached load, the most frequent one.
    """

    __slots__ = ()
    __init__ = object.__init__


def merge(data: dict[str, Any], sets: dict[str, Any], dels: list[str]) -> None:
    """Apply a session's changes (keys set, keys deleted) to ``data``."""
    data.update(sets)
    for key in dels:
        data.pop(key, None)


# -- the text format ----------------------------------------------------------
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
    data_text = ENCODER.encode(data)  # raises TypeError or ValueError for what JSON cannot hold
    record: dict[str, Any] = {"created": created, "accessed": accessed, "data": orjson.Fragment(data_text)}
    if LONG_NUMBER.search(data_text) is not None:
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


def unjsonable(data: dict[str, Any], exc: Exception) -> SessionValueError:
    """The error for data JSON cannot hold, naming the first key whose value it cannot."""
    for key, value in data.items():
        try:
            strict(value)
        except (TypeError, ValueError):
            return SessionValueError(f"session[{key!r}] cannot be stored as JSON ({exc}); nothing was saved", key=key)
        if not isinstance(key, str):
            return SessionValueError(f"session key {key!r} is not a string; nothing was saved", key=str(key))
    return SessionValueError(f"the session cannot be stored as JSON: {exc}", key="")


# -- the decoded-record cache -------------------------------------------------
class RecordCache:
    """Session id -> the last record text seen for it, with its decoded parts."""

    __slots__ = ("entries", "max_text", "_entries")

    def __init__(self, *, entries: int = 4096, max_text: int = 4096) -> None:
        self.entries = entries
        self.max_text = max_text
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session_id: str, text: str) -> tuple[float, float, dict[str, Any], bytes, bool] | None:
        """The parts of ``text`` if it is the text last cached for ``session_id``; data is a fresh copy.

        The last part tells whether the data is flat (:func:`~wsgisession.jsondata.is_flat`).
        """
        entry = self._entries.get(session_id)
        if entry is None or entry[0] != text:
            return None
        template = entry[3]
        if template is not None:
            return entry[1], entry[2], dict(template), entry[4], True
        return entry[1], entry[2], orjson.loads(entry[4]), entry[4], False

    def put(
        self, session_id: str, text: str, created: float, accessed: float, data: dict[str, Any],
        snapshot: bytes | None, flat: bool | None = None,
    ) -> None:
        """Remember ``text`` as the record (``created``, ``accessed``, ``data``) whose data serializes as ``snapshot``.

        ``snapshot`` must be exact (decoding it gives ``data`` back); ``None``
        (not exact, or too long) forgets the id instead. ``flat`` is
        :func:`~wsgisession.jsondata.is_flat` of ``data`` if the caller knows it.
        """
        entries = self._entries
        if snapshot is None or len(text) > self.max_text:
            entries.pop(session_id, None)
            return
        if flat is None:
            flat = is_flat(data)
        if entries.pop(session_id, None) is None and len(entries) >= self.entries:
            del entries[next(iter(entries))]  # the least recently stored
        entries[session_id] = (text, created, accessed, dict(data) if flat else None, snapshot)

    def forget(self, session_id: str) -> None:
        self._entries.pop(session_id, None)


class Records:
    """Record texts to :class:`Record` objects and back, through a :class:`RecordCache`."""

    __slots__ = ("cache", "_fingerprint")

    def __init__(self, *, fingerprint: Callable[[str], str], cache: RecordCache | None = None) -> None:
        self.cache = cache or RecordCache()
        self._fingerprint = fingerprint  # for the log line of an unreadable record

    def decode(self, text: str) -> Record:
        """The record of ``text`` (``ValueError``, ``KeyError`` or ``TypeError`` if it is not one)."""
        raw = decode_record(text)
        data = raw["data"]
        if not isinstance(data, dict):
            raise ValueError("a session's data is a JSON object")
        return Record(float(raw["created"]), float(raw["accessed"]), data)

    def parse(self, session_id: str, text: str | None) -> Record | None:
        """The record of ``text``, from the cache if it is the text last seen; ``None`` if none or unreadable."""
        if text is None:
            return None
        cached = self.cache.get(session_id, text)
        if cached is not None:  # the text this process last read or wrote for the id: decoded already
            found: Record = _Prebuilt()
            found.created, found.accessed, found.data, found.snapshot, found.flat = cached
            return found
        try:
            record = self.decode(text)
        except (ValueError, KeyError, TypeError):
            security_log.warning("unreadable session record %s ignored", self._fingerprint(session_id))
            return None
        data = record.data
        snap = snapshot(data)
        flat = snap is not None and is_flat(data)
        if flat or is_exact(data, snap):
            record.snapshot, record.flat = snap, flat
            self.cache.put(session_id, text, record.created, record.accessed, data, snap, flat)
        return record

    def encode(self, session_id: str, record: Record, snapshot_text: bytes | None = None) -> str:
        """The text of ``record`` (remembered as the id's last text); sets ``record.snapshot`` and ``flat``.

        ``snapshot_text`` is :func:`~wsgisession.jsondata.snapshot` of its data
        if the caller has it. A value JSON cannot hold raises SessionValueError.
        """
        data = record.data
        if snapshot_text is None:
            snapshot_text = snapshot(data)
        flat = snapshot_text is not None and is_flat(data)
        if flat or is_exact(data, snapshot_text):
            assert snapshot_text is not None
            text = encode_exact(record.created, record.accessed, snapshot_text)
            record.snapshot, record.flat = snapshot_text, flat
        else:
            try:
                text = encode_record(record.created, record.accessed, data, snapshot_text=snapshot_text, exact=False)
            except (TypeError, ValueError) as exc:
                raise unjsonable(data, exc) from exc
            record.snapshot, record.flat = None, False
        self.cache.put(session_id, text, record.created, record.accessed, data, record.snapshot, flat)
        return text

    def forget(self, session_id: str) -> None:
        self.cache.forget(session_id)
