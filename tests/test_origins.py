from __future__ import annotations

import pytest
from werkzeug.test import Client

from wsgisession.errors import BadOrigin, ConfigurationError
from wsgisession.origins import CorsHeaders, OriginPolicy

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


def test_allow_list() -> None:
    policy = OriginPolicy(allowed_origins=["https://a.example/"])
    policy.check({**HOST, "HTTP_ORIGIN": "https://a.example"})
    with pytest.raises(BadOrigin):
        policy.check({**HOST, "HTTP_ORIGIN": "http://app.example:8080"})


def test_missing_origin_refused_only_with_a_cookie() -> None:
    policy = OriginPolicy()
    policy.check(dict(HOST))
    with pytest.raises(BadOrigin, match="no Origin"):
        policy.check({**HOST, "HTTP_COOKIE": "beaker.session.id=x"})
    OriginPolicy(allow_missing_origin=True).check({**HOST, "HTTP_COOKIE": "beaker.session.id=x"})


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
