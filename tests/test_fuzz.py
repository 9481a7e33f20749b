"""Property-based fuzzing of the cookie header and session ids: nothing escapes, nothing is adopted."""
from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from tests.helpers import SECRET
from wsgisession.cookies import SessionCookie
from wsgisession.ids import is_session_id, new_session_id
from wsgisession.errors import BadSignature, NoCookie
from wsgisession.ids import Fingerprint
from wsgisession.manager import SessionManager
from wsgisession.middleware import SessionMiddleware
from wsgisession.store import Store

COOKIE = SessionCookie(secret=SECRET)
SIGNED_ID = new_session_id()
SIGNED = COOKIE.sign(SIGNED_ID)

header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=300)
cookie_pair = st.tuples(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz._-", min_size=1, max_size=12).filter(lambda n: n != COOKIE.name),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=';"\\'), max_size=30),
)


@given(header_text)
def test_any_cookie_header_gives_our_id_or_a_specific_error(header: str) -> None:
    try:
        session_id = COOKIE.read({"HTTP_COOKIE": header})
    except (NoCookie, BadSignature):
        return
    assert session_id == SIGNED_ID  # only possible if our signed cookie is in the header


@given(st.lists(cookie_pair, max_size=6), st.lists(cookie_pair, max_size=6), header_text.filter(lambda t: ";" not in t))
def test_junk_cookies_around_ours_never_hide_it(before: list[tuple[str, str]], after: list[tuple[str, str]],
                                                 garbage: str) -> None:
    parts = [f"{k}={v}" for k, v in before] + [f"{COOKIE.name}={SIGNED}"] + [f"{k}={v}" for k, v in after]
    parts.append(garbage.replace('"', ""))
    assert COOKIE.read({"HTTP_COOKIE": "; ".join(parts)}) == SIGNED_ID


@given(st.text(max_size=80))
def test_only_our_id_shape_passes_the_format_check(candidate: str) -> None:
    if is_session_id(candidate):
        assert len(candidate) == 43 and all(c.isalnum() or c in "-_" for c in candidate) and candidate.isascii()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header_text)
def test_middleware_never_raises_and_never_adopts_a_client_id(tmp_path: Path, header: str) -> None:
    store = Store(type="file", data_dir=str(tmp_path / "s"))
    manager = SessionManager(store=store, fingerprint=Fingerprint(secret=SECRET))

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        session = environ["beaker.session"]
        session["hit"] = 1  # type: ignore[index]
        start_response("200 OK", [])  # type: ignore[operator]
        return [json.dumps(dict(session)).encode()]  # type: ignore[call-overload]

    response = Client(SessionMiddleware(app, manager=manager, cookie=COOKIE)).get("/", headers={"Cookie": header})
    assert response.status_code == 200
    issued = response.headers.get("Set-Cookie", "")
    new_id = issued.split("=", 1)[1].split(".", 1)[0] if issued else ""
    assert new_id == "" or (is_session_id(new_id) and new_id not in header)
    written = [p.name for p in (tmp_path / "s").rglob("*.json")]
    assert all(not any(part in header for part in (name[:-5],) if len(part) > 8) for name in written)
    assert all(p.resolve().is_relative_to((tmp_path / "s").resolve()) for p in (tmp_path / "s").rglob("*"))
