"""atomic(): read-modify-write under the session's lock (rule 5), rollback, values JSON cannot hold."""
from __future__ import annotations

import datetime
import uuid
from typing import Any

import gevent
import pytest

from tests.test_session import Color, saved_session, stored
from wsgisession.errors import SessionValueError
from wsgisession.manager import SessionManager


def test_rule5_atomic_increments_never_lose_an_update(manager: SessionManager) -> None:
    session = saved_session(manager, n=0)

    def incr() -> None:
        mine = manager.open(session.id)
        with mine.atomic():
            value = mine["n"]
            gevent.sleep(0.001)  # a forced yield between load and save
            mine["n"] = value + 1

    gevent.joinall([gevent.spawn(incr) for _ in range(50)], raise_error=True)
    assert stored(manager, session.id) == {"n": 50}


def test_rule5_atomic_keeps_unsaved_changes_and_rolls_back_on_error(manager: SessionManager) -> None:
    session = saved_session(manager, n=0)
    session["pending"] = "yes"
    with pytest.raises(RuntimeError):
        with session.atomic():
            session["n"] = 99
            raise RuntimeError("boom")
    assert session["n"] == 0 and session["pending"] == "yes"
    with session.atomic():
        session["n"] += 1
        with session.atomic():  # reentrant
            session["n"] += 1
    assert stored(manager, session.id) == {"n": 2, "pending": "yes"}


@pytest.mark.parametrize("bad", [uuid.UUID(int=7), Color.RED, float("inf"), datetime.date(2026, 1, 1)])
def test_atomic_save_of_a_value_json_cannot_hold_raises_and_keeps_old_data(manager: SessionManager, bad: Any) -> None:
    session = saved_session(manager, n=1)
    with pytest.raises(SessionValueError) as info:
        with manager.open(session.id).atomic() as mine:
            mine["n"] += 1
            mine["bad"] = [bad]
    assert info.value.key == "bad"
    assert stored(manager, session.id) == {"n": 1}
