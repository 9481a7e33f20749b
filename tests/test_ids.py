"""Session ids, the secret and fingerprints."""
from __future__ import annotations

import pytest

from tests.helpers import SECRET
from wsgisession.errors import ConfigurationError
from wsgisession import ids
from wsgisession.ids import Fingerprint, check_secret, is_session_id, new_session_id


def test_new_ids_are_well_formed_and_unique() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(is_session_id(i) for i in ids)


@pytest.mark.parametrize("value", ["", "..x", "../" + "a" * 40, "a" * 42, "a" * 44, "a" * 42 + "/", None, 42])
def test_id_format_check_rejects_junk(value: object) -> None:
    assert not is_session_id(value)


def test_an_id_checked_again_is_answered_the_same_and_junk_never_joins_them() -> None:
    sid = new_session_id()
    assert is_session_id(sid) and is_session_id(sid)
    assert not is_session_id(sid + "\n") and not is_session_id(sid[:-1] + "/")
    assert not is_session_id(sid + "\n"), "asked twice, junk is still junk"


def test_a_str_subclass_that_claims_to_equal_a_known_id_is_checked_by_its_shape() -> None:
    sid = new_session_id()
    assert is_session_id(sid)

    class Liar(str):
        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return hash(sid)

    assert not is_session_id(Liar("../" + "a" * 40))
    assert is_session_id(Liar(new_session_id())), "a subclass of the right shape is an id"


def test_the_ids_kept_as_checked_stay_bounded() -> None:
    for _ in range(ids._SHAPED_MAX + 10):  # noqa: SLF001
        assert is_session_id(new_session_id())
    assert len(ids._SHAPED) <= ids._SHAPED_MAX  # noqa: SLF001


def test_fingerprint_is_stable_short_and_hides_the_id() -> None:
    fingerprint = Fingerprint(secret=SECRET)
    sid = new_session_id()
    assert fingerprint(sid) == fingerprint(sid)
    assert len(fingerprint(sid)) == 16 and sid not in fingerprint(sid)


@pytest.mark.parametrize("secret", [None, "", [], "short", "a" * 40, ["ok-secret-0123456789-abcdefghijklmnopq", "x"]])
def test_weak_or_missing_secret_is_refused(secret: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_secret(secret)  # type: ignore[arg-type]
    assert info.value.key == "secret"
