"""wsgisession.testing, and the README's "Testing your app" example run as written."""
from __future__ import annotations

import re

from tests.helpers import README
from tests.servers import Server


def test_readme_testing_example_runs_against_the_counter(counter_server: Server) -> None:
    text = README.read_text()
    block = re.search(r"a browser's\npage and socket do::\n\n((?:    .*\n|\n)+)", text)
    assert block is not None
    code = re.sub(r"^    ", "", block.group(1), flags=re.M).replace("http://127.0.0.1:6543", counter_server.url)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
