"""The README's Python examples run as they are written."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from werkzeug.test import Client

README = Path(__file__).resolve().parent.parent / "README.rst"


def python_blocks() -> list[str]:
    text = README.read_text()
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)
    return [re.sub(r"^    ", "", block, flags=re.M) for block in blocks]


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
    assert {"set_name", "incr"} <= set(app.sockets._handlers["/"])
    assert "/chat" in app.sio.namespace_handlers
