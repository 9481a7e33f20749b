"""The README's Python examples run as they are written."""
from __future__ import annotations

import configparser
import re
from typing import Any

import docutils.core
from werkzeug.test import Client

from wsgisession.config import BEAKER, OURS, SOCKETIO, from_settings

from tests.helpers import README



def python_blocks() -> list[str]:
    text = README.read_text()
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)
    return [re.sub(r"^    ", "", block, flags=re.M) for block in blocks]


def html_blocks() -> list[str]:
    blocks = re.findall(r"\.\. code-block:: html\n\n((?:    .*\n|\n)+)", README.read_text())
    return [re.sub(r"^    ", "", block, flags=re.M) for block in blocks]


def test_readme_renders_without_errors() -> None:
    """README.rst is the PyPI page: a malformed table or role would show as raw text there."""
    docutils.core.publish_string(
        README.read_text(), writer="null", settings_overrides={"report_level": 2, "halt_level": 2}
    )


def test_readme_browser_code_is_the_chat_page_the_browser_tests_run() -> None:
    (block,) = html_blocks()
    page = (README.parent / "examples" / "chat" / "page.html").read_text()
    for line in block.strip().splitlines():
        assert line.strip() in page, f"README's client line is not in examples/chat/page.html: {line.strip()}"
    assert "const socket = io();" in block  # the client's default options


def test_readme_examples_run_and_share_the_session() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2
    namespace: dict[str, Any] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    app = namespace["app"]
    client = Client(app)
    assert client.get("/login?user=ann").text == "hello ann, visit 1"
    assert client.get("/").text == "hello ann, visit 2"
    assert {"set_name", "incr"} <= set(app.sio.handlers["/"])
    assert "/chat" in app.sio.namespace_handlers


def test_readme_ini_snippet_is_valid_configuration(monkeypatch: Any) -> None:
    (block,) = re.findall(r"\.\. code-block:: ini\n\n((?:    .*\n|\n)+)", README.read_text())
    parser = configparser.ConfigParser(defaults={"here": "/srv/app"})
    parser.read_string(re.sub(r"^    ", "", block, flags=re.M))
    settings = {k: v for k, v in parser.items("filter:session") if k not in ("use", "here")}
    monkeypatch.setenv("SESSION_SECRET", "x" * 16 + "abcdefghijklmnop")
    options = from_settings(settings)
    assert options["type"] == "sqlite" and options["timeout"] == 3600 and options["secure"] is True
    assert options["data_dir"] == "/srv/app/data/sessions"


def test_every_configuration_key_is_documented() -> None:
    documented = set(re.findall(r"^``([a-z_.]+)``", (README.parent / "docs" / "configuration.rst").read_text(), re.M))
    documented |= {f"socketio.{k}" for k in ("engineio_logger", "compression_threshold")}  # rows naming two keys
    keys = {f"beaker.session.{k}" for k in BEAKER} | {f"wsgisession.{k}" for k in OURS}
    keys |= {f"socketio.{k}" for k in SOCKETIO}
    assert keys - documented == set()


def test_every_document_renders_without_errors() -> None:
    """docs/*.rst and the examples' READMEs are read on GitHub: plain docutils must take them (no Sphinx roles)."""
    documents = sorted((README.parent / "docs").glob("*.rst")) + sorted((README.parent / "examples").glob("*/README.rst"))
    assert len(documents) >= 8
    for document in documents:
        docutils.core.publish_string(
            document.read_text(), writer="null", settings_overrides={"report_level": 2, "halt_level": 2}
        )
