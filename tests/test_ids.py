"""Session ids, the secret and fingerprints."""
from __future__ import annotations

import pytest

from tests.helpers import SECRET
from wsgisession.errors import ConfigurationError
from wsgisession.ids import Fingerprint, check_secret, is_session_id, new_session_id


def test_new_ids_are_well_formed_and_unique() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(is_session_id(i) for i in ids)


@pytest.mark.parametrize("value", ["", "..x", "../" + "a" * 40, "a" * 42, "a" * 44, "a" * 42 + "/", None, 42])
def test_id_format_check_rejects_junk(value: object) -> None:
    assert not is_session_id(value)


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
