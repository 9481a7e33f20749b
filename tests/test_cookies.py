from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.helpers import SECRET
from wsgisession.cookies import SessionCookie, cookie_date
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


def test_set_cookie_is_spelled_as_beakers() -> None:
    # Beaker's tests look for "Domain=.hoop.com" and "expires=": the leading dot kept, the date hyphenated
    cookie = SessionCookie(secret=SECRET, domain=".hoop.com", expires=datetime(2019, 5, 22, tzinfo=timezone.utc))
    value = cookie.set_header(new_session_id())[1]
    assert "; Domain=.hoop.com;" in value and "; expires=Wed, 22-May-2019 00:00:00 GMT;" in value


@pytest.mark.parametrize(
    ("expires", "expected"),
    [(True, None), (False, "Tue, 19-Jan-2038 03:14:07 GMT")],
)
def test_cookie_expires_true_is_a_browser_session_false_is_never(expires: bool, expected: str | None) -> None:
    value = SessionCookie(secret=SECRET, expires=expires).set_header(new_session_id())[1]
    assert ("expires=" not in value) if expected is None else (f"expires={expected}" in value)


def test_cookie_expires_in_seconds_or_a_timedelta_counts_from_now() -> None:
    for expires in (300, timedelta(seconds=300)):
        attributes = SessionCookie(secret=SECRET, expires=expires).attributes
        expiry = attributes.expiry(datetime(2030, 1, 1, tzinfo=timezone.utc))
        assert expiry == datetime(2030, 1, 1, 0, 5, tzinfo=timezone.utc)


def test_cookie_date_ignores_the_locale() -> None:
    assert cookie_date(datetime(2019, 5, 22, 13, 4, 5, tzinfo=timezone.utc)) == "Wed, 22-May-2019 13:04:05 GMT"


@pytest.mark.parametrize(
    ("option", "value"),
    [("path", "app"), ("domain", "a;b"), ("secure", "yes"), ("httponly", 1), ("samesite", "lax"),
     ("expires", "tomorrow"), ("expires", -1), ("max_age", -1)],
)
def test_bad_cookie_attributes_name_the_option(option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        SessionCookie(secret=SECRET, **{option: value})
    assert info.value.value == value and info.value.key in (option, "cookie_expires")


def test_a_verified_header_is_kept_and_reads_the_same_id(cookie: SessionCookie) -> None:
    sid = new_session_id()
    header = f"a=b c; beaker.session.id={cookie.sign(sid)}; theme=dark"
    assert cookie.read({"HTTP_COOKIE": header}) == sid
    assert cookie.read({"HTTP_COOKIE": header}) == sid  # from the kept headers
    other = SessionCookie(secret="another-secret-" + "x" * 32)
    with pytest.raises(BadSignature):
        other.read({"HTTP_COOKIE": header})  # kept per cookie (per secret), never shared


def test_a_refused_header_is_never_kept(cookie: SessionCookie) -> None:
    value = cookie.sign(new_session_id())
    forged = value[:-1] + ("A" if value[-2] != "A" else "B") + value[-1]
    header = f"beaker.session.id={value[:-2]}{forged[-2:]}"
    for _ in range(3):
        with pytest.raises(BadSignature):
            cookie.read({"HTTP_COOKIE": header})
        with pytest.raises(NoCookie):
            cookie.read({"HTTP_COOKIE": "theme=dark"})
    assert header not in cookie._verified  # checked again (and logged by the middleware) every time


def test_a_header_without_our_cookie_is_kept_and_reads_as_no_cookie_every_time(cookie: SessionCookie) -> None:
    for header in ("", "theme=dark; _ga=GA1.2.3", "beaker.session.idx=1"):
        for _ in range(3):
            with pytest.raises(NoCookie):
                cookie.read({"HTTP_COOKIE": header} if header else {})
        assert cookie._verified[header] is None  # an anonymous visitor's header: parsed once
    sid = new_session_id()
    signed = f"theme=dark; beaker.session.id={cookie.sign(sid)}"
    assert cookie.read({"HTTP_COOKIE": signed}) == sid  # the same visitor once signed in


def test_kept_headers_are_bounded(cookie: SessionCookie) -> None:
    from wsgisession import cookies

    ids = [new_session_id() for _ in range(cookies.VERIFIED_HEADERS + 20)]
    for sid in ids:
        assert cookie.read({"HTTP_COOKIE": f"beaker.session.id={cookie.sign(sid)}"}) == sid
    assert len(cookie._verified) == cookies.VERIFIED_HEADERS
    long = f"pad={'x' * cookies.VERIFIED_HEADER_MAX}; beaker.session.id={cookie.sign(ids[0])}"
    assert cookie.read({"HTTP_COOKIE": long}) == ids[0]  # verified all the same, but not kept
    assert long not in cookie._verified
