from __future__ import annotations

import pytest
from werkzeug.test import Client

from wsgisession.errors import BadOrigin, ConfigurationError
from wsgisession.origins import VERDICT_KEY, CorsHeaders, OriginPolicy, is_same_origin_request

HOST = {"wsgi.url_scheme": "http", "HTTP_HOST": "app.example:8080"}


def test_same_origin_by_default() -> None:
    policy = OriginPolicy()
    policy.check({**HOST, "HTTP_ORIGIN": "http://app.example:8080"})
    with pytest.raises(BadOrigin):
        policy.check({**HOST, "HTTP_ORIGIN": "http://evil.example"})
    with pytest.raises(BadOrigin):
        policy.check({**HOST, "HTTP_ORIGIN": "https://app.example:8080"})


def test_forwarded_scheme_and_host_count_as_same_origin() -> None:
    environ = {**HOST, "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "www.example",
               "HTTP_ORIGIN": "https://www.example"}
    OriginPolicy().check(environ)


def test_a_default_port_in_host_is_the_origin_without_it() -> None:
    # a proxy that passes Host: name:443 (as some do); a browser's Origin never writes the default port
    OriginPolicy().check({"wsgi.url_scheme": "http", "HTTP_HOST": "app.example:443", "HTTP_X_FORWARDED_PROTO": "https",
                          "HTTP_ORIGIN": "https://app.example"})
    OriginPolicy().check({"wsgi.url_scheme": "http", "HTTP_HOST": "app.example:80", "HTTP_ORIGIN": "http://app.example"})
    with pytest.raises(BadOrigin):  # 443 is not http's default
        OriginPolicy().check({"wsgi.url_scheme": "http", "HTTP_HOST": "app.example:443",
                              "HTTP_ORIGIN": "http://app.example"})


def test_allow_list() -> None:
    policy = OriginPolicy(allowed_origins=["https://a.example/"])
    policy.check({**HOST, "HTTP_ORIGIN": "https://a.example"})
    with pytest.raises(BadOrigin):
        policy.check({**HOST, "HTTP_ORIGIN": "http://app.example:8080"})


COOKIE = {"HTTP_COOKIE": "beaker.session.id=x"}


def test_missing_origin_and_fetch_metadata_refused_only_with_a_cookie() -> None:
    policy = OriginPolicy()
    policy.check(dict(HOST))
    with pytest.raises(BadOrigin, match="neither an Origin, a Sec-Fetch-Site nor a Referer"):
        policy.check({**HOST, **COOKIE})
    OriginPolicy(allow_missing_origin=True).check({**HOST, **COOKIE})


def test_same_origin_get_without_origin_is_accepted_by_fetch_metadata() -> None:
    # what Chromium sends on the polling handshake of a same-origin page: no Origin
    OriginPolicy().check({**HOST, **COOKIE, "HTTP_SEC_FETCH_SITE": "same-origin"})


@pytest.mark.parametrize("site", ["same-site", "cross-site", "none", "bogus"])
def test_missing_origin_with_other_fetch_metadata_is_refused(site: str) -> None:
    for policy in (OriginPolicy(), OriginPolicy(allow_missing_origin=True)):
        with pytest.raises(BadOrigin, match=f"Sec-Fetch-Site is '{site}'"):
            policy.check({**HOST, **COOKIE, "HTTP_SEC_FETCH_SITE": site})
    with pytest.raises(BadOrigin):  # without a cookie too: the browser said where the page is
        OriginPolicy().check({**HOST, "HTTP_SEC_FETCH_SITE": site})


def test_same_origin_without_origin_under_an_allow_list_needs_the_own_origin_listed() -> None:
    environ = {**HOST, **COOKIE, "HTTP_SEC_FETCH_SITE": "same-origin"}
    OriginPolicy(allowed_origins=["http://app.example:8080", "https://a.example"]).check(dict(environ))
    with pytest.raises(BadOrigin, match="own origin is not in allowed_origins"):
        OriginPolicy(allowed_origins=["https://a.example"]).check(dict(environ))


def test_plain_http_without_fetch_metadata_is_judged_by_the_referer() -> None:
    # browsers send Sec-Fetch-Site only to trustworthy origins: a plain-http page of another host sends neither
    policy = OriginPolicy()
    policy.check({**HOST, **COOKIE, "HTTP_REFERER": "http://app.example:8080/chat?x=1"})
    for referer in ("http://evil.example/", "http://app.example:8081/", "https://app.example:8080/", "garbage"):
        with pytest.raises(BadOrigin, match="comes from a page of"):
            policy.check({**HOST, **COOKIE, "HTTP_REFERER": referer})
    allow_listed = OriginPolicy(allowed_origins=["http://partner.example"])
    allow_listed.check({**HOST, **COOKIE, "HTTP_REFERER": "http://partner.example/page"})
    with pytest.raises(BadOrigin):
        allow_listed.check({**HOST, **COOKIE, "HTTP_REFERER": "http://app.example:8080/"})


def test_an_origin_header_wins_over_fetch_metadata() -> None:
    with pytest.raises(BadOrigin, match="evil"):
        OriginPolicy().check({**HOST, **COOKIE, "HTTP_ORIGIN": "http://evil.example", "HTTP_SEC_FETCH_SITE": "same-origin"})
    OriginPolicy().check({**HOST, **COOKIE, "HTTP_ORIGIN": "http://app.example:8080", "HTTP_SEC_FETCH_SITE": "cross-site"})


def test_the_decision_is_made_once_per_handshake() -> None:
    environ = {**HOST, **COOKIE, "HTTP_ORIGIN": "http://evil.example"}
    policy = OriginPolicy()
    with pytest.raises(BadOrigin) as first:
        policy.check(environ)
    assert environ[VERDICT_KEY] == str(first.value)
    environ["HTTP_ORIGIN"] = "http://app.example:8080"  # a later namespace of the same handshake
    with pytest.raises(BadOrigin):
        policy.check(environ)
    accepted = {**HOST, **COOKIE, "HTTP_SEC_FETCH_SITE": "same-origin"}
    policy.check(accepted)
    assert accepted[VERDICT_KEY] == ""


def test_same_origin_request() -> None:
    assert is_same_origin_request({**HOST, "HTTP_ORIGIN": "http://app.example:8080"})
    assert is_same_origin_request({**HOST, "HTTP_SEC_FETCH_SITE": "same-origin"})
    assert not is_same_origin_request({**HOST, "HTTP_ORIGIN": "http://app.example:8081"})
    assert not is_same_origin_request({**HOST, "HTTP_ORIGIN": "http://app.example:8080".replace("http", "https")})
    assert not is_same_origin_request({**HOST, "HTTP_SEC_FETCH_SITE": "same-site"})
    assert not is_same_origin_request(dict(HOST))


def test_wildcard_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="allowed_origins"):
        OriginPolicy(allowed_origins=["*"])


def test_cors_headers_only_for_allowed_origins() -> None:
    def inner(environ: object, start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"ok"]

    client = Client(CorsHeaders(inner, policy=OriginPolicy(allowed_origins=["https://a.example"])))
    allowed = client.get("/", headers={"Origin": "https://a.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://a.example"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Access-Control-Allow-Origin" not in client.get("/", headers={"Origin": "https://b.example"}).headers
    preflight = client.options("/", headers={"Origin": "https://a.example", "Access-Control-Request-Headers": "x-a"})
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Headers"] == "x-a"


def test_is_cross_site_request_is_the_csrf_check_of_a_json_or_curl_route() -> None:
    from wsgisession.origins import is_cross_site_request

    base = {"HTTP_HOST": "app.example", "wsgi.url_scheme": "https"}
    assert not is_cross_site_request(base)  # curl, a script: no browser, no riding on its cookies
    assert not is_cross_site_request({**base, "HTTP_ORIGIN": "https://app.example"})
    assert is_cross_site_request({**base, "HTTP_ORIGIN": "https://evil.example"})
    assert is_cross_site_request({**base, "HTTP_ORIGIN": "null"})  # a sandboxed or file: page
    assert not is_cross_site_request({**base, "HTTP_SEC_FETCH_SITE": "same-origin"})
    assert not is_cross_site_request({**base, "HTTP_SEC_FETCH_SITE": "none"})  # typed in the address bar
    assert is_cross_site_request({**base, "HTTP_SEC_FETCH_SITE": "same-site"})
    assert is_cross_site_request({**base, "HTTP_SEC_FETCH_SITE": "cross-site"})
    proxied = {"HTTP_HOST": "127.0.0.1:8001", "wsgi.url_scheme": "http", "HTTP_X_FORWARDED_PROTO": "https",
               "HTTP_X_FORWARDED_HOST": "app.example"}
    assert not is_cross_site_request({**proxied, "HTTP_ORIGIN": "https://app.example"})
