from __future__ import annotations

import pytest

from tests.helpers import SECRET
from wsgisession.cookies import SessionCookie
from wsgisession.ids import new_session_id
from wsgisession.errors import BadSignature, ConfigurationError, NoCookie



@pytest.fixture
def cookie() -> SessionCookie:
    return SessionCookie(secret=SECRET)


def test_sign_and_unsign_round_trip(cookie: SessionCookie) -> None:
    sid = new_session_id()
    assert cookie.unsign(cookie.sign(sid)) == sid


def test_tampered_signature_is_refused(cookie: SessionCookie) -> None:
    value = cookie.sign(new_session_id())
    head, _, signature = value.rpartition(".")
    # the first character: every one of its bits is signature (the last one's low bits are base64 padding)
    forged = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(BadSignature):
        cookie.unsign(f"{head}.{forged}")


def test_unsigned_id_is_refused(cookie: SessionCookie) -> None:
    with pytest.raises(BadSignature):
        cookie.unsign(new_session_id())


def test_signed_malformed_id_is_refused() -> None:
    import hashlib

    import itsdangerous

    forged = itsdangerous.Signer([SECRET], salt="wsgisession.cookie", digest_method=hashlib.sha256).sign("..x")
    with pytest.raises(BadSignature, match="malformed"):
        SessionCookie(secret=SECRET).unsign(forged.decode())


def test_other_secret_is_refused(cookie: SessionCookie) -> None:
    other = SessionCookie(secret="another-secret-0123456789-abcdefghijklmn")
    with pytest.raises(BadSignature):
        cookie.unsign(other.sign(new_session_id()))


def test_rotated_secrets_still_verify_old_cookies() -> None:
    old = SessionCookie(secret=SECRET)
    new = SessionCookie(secret=[SECRET, "newer-secret-0123456789-abcdefghijklmnopq"])
    sid = new_session_id()
    assert new.unsign(old.sign(sid)) == sid
    assert new.sign(sid) != old.sign(sid)


def test_read_without_cookie_raises_no_cookie(cookie: SessionCookie) -> None:
    with pytest.raises(NoCookie):
        cookie.read({})
    with pytest.raises(NoCookie):
        cookie.read({"HTTP_COOKIE": "other=1"})


def test_malformed_unrelated_cookie_does_not_hide_the_session(cookie: SessionCookie) -> None:
    sid = new_session_id()
    header = f'a=b c; {cookie.name}={cookie.sign(sid)}; broken="x; ;;=;'
    assert cookie.read({"HTTP_COOKIE": header}) == sid


def test_a_stale_duplicate_cookie_does_not_win(cookie: SessionCookie) -> None:
    sid = new_session_id()
    header = f"{cookie.name}=junk; {cookie.name}={cookie.sign(sid)}"
    assert cookie.read({"HTTP_COOKIE": header}) == sid


def test_set_cookie_defaults_are_httponly_and_lax(cookie: SessionCookie) -> None:
    name, value = cookie.set_header(new_session_id())
    assert name == "Set-Cookie"
    assert "HttpOnly" in value and "SameSite=Lax" in value and "Path=/" in value and "Secure" not in value


def test_secure_domain_and_max_age_are_configurable() -> None:
    cookie = SessionCookie(secret=SECRET, secure=True, domain="example.com", path="/app", max_age=60)
    value = cookie.set_header(new_session_id())[1]
    assert "Secure" in value and "Domain=example.com" in value and "Path=/app" in value and "Max-Age=60" in value


def test_delete_cookie_keeps_domain_and_path() -> None:
    cookie = SessionCookie(secret=SECRET, domain="example.com", path="/app")
    value = cookie.delete_header()[1]
    assert "Max-Age=0" in value and "Domain=example.com" in value and "Path=/app" in value


def test_samesite_none_needs_secure() -> None:
    with pytest.raises(ConfigurationError, match="secure"):
        SessionCookie(secret=SECRET, samesite="None")
