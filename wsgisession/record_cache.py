"""The decoded form of the session records this process last read or wrote.

Every load still reads the store: the cache only spares decoding a text seen
before. An entry is used when the text just read is equal to the text it was
made from, so a record written meanwhile by another process or host (another
text) is decoded as usual, and nothing stale is ever handed out.

    cache = RecordCache()
    cache.put(session_id, text, created, accessed, data, snapshot)
    found = cache.get(session_id, text)  # (created, accessed, fresh data, snapshot, flat) or None

The data handed out is a fresh copy each time: sessions change their data in
place. Data of scalars only (strings, numbers, booleans, null) is copied as a
dictionary; other data is decoded again from its snapshot, which is still
cheaper than the record's whole text. Bounded: at most ``entries`` records of
at most ``max_text`` characters each (the least recently stored is dropped first).
"""
from __future__ import annotations

from typing import Any

import orjson

from .codec import is_flat

_Entry = tuple[str, float, float, "dict[str, Any] | None", bytes]


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

        The last part tells whether the data is flat (:func:`~wsgisession.codec.is_flat`).
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
        :func:`~wsgisession.codec.is_flat` of ``data`` if the caller knows it.
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
