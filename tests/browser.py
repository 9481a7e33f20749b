"""Headless Chromium for the tests: ``tests/js/browser_driver.js`` driven from Python.

    with Browser.launch() as browser:
        tab = browser.tab("ann")                 # a new context (cookie jar) and a tab in it
        tab.goto(server.url + "/page")
        tab.run("async () => (await fetch('/get')).json()")

Debian's ``/usr/bin/chromium`` with the npm package ``playwright-core``: no
browser is downloaded. Every command has a timeout; a hung browser is killed
with its process group.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from tests.helpers import CLIENT_JS, ROOT

# Page functions the tests run with Tab.run:
#: the text of the element ``id`` once it is exactly ``wanted`` (10 s at most; else its text, or null)
TEXT = """async ([id, wanted]) => {
  for (let i = 0; i < 200; i++) {
    const element = document.getElementById(id);
    if (element && element.textContent === wanted) return wanted;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const element = document.getElementById(id);
  return element ? element.textContent : null;
}"""
#: click the element ``id``
CLICK = "(id) => { document.getElementById(id).click(); return true; }"
#: the example apps' ``GET /api/me``, as the page's own fetch sends it
ME = "async () => (await fetch('/api/me')).json()"

DRIVER = ROOT / "tests" / "js" / "browser_driver.js"
PLAYWRIGHT = ROOT / "node_modules" / "playwright-core"
ARTIFACTS = ROOT / "tests" / "artifacts"
#: a host name the browser maps to 127.0.0.1: over plain http it is not a trustworthy origin, as a LAN host is not
PLAIN_HOST = "wsgisession.test"


def node_and_chromium() -> tuple[str, str]:
    """node and chromium, or a failed test that says how to install them."""
    node = shutil.which("node")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if node is None:
        pytest.fail("node is not installed (apt-get install nodejs; .ci/run does it)")
    if not os.access(chromium, os.X_OK):
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does it)")
    for needed in (PLAYWRIGHT, CLIENT_JS):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: run `make` (npm install)")
    return node, chromium


class BrowserError(AssertionError):
    """A command failed in the browser (the driver's message says where)."""


class Browser:
    """One Chromium process; tabs live in contexts with their own cookie jars."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._names = itertools.count(1)
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        first = self._answer(0, timeout=90)
        self.version = first

    @classmethod
    @contextlib.contextmanager
    def launch(cls, *, ignore_https_errors: bool = False) -> Iterator[Browser]:
        """Chromium; ``ignore_https_errors``: its contexts accept a self-signed certificate (still an https origin)."""
        node, chromium = node_and_chromium()
        options = {"chromium": chromium, "launch_timeout_ms": 60000, "host_rules": f"MAP {PLAIN_HOST} 127.0.0.1",
                   "ignore_https_errors": ignore_https_errors}
        process = subprocess.Popen(
            [node, str(DRIVER), json.dumps(options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            start_new_session=True,  # a hung run takes its Chromium down with it
        )
        browser = cls(process)
        try:
            yield browser
        finally:
            browser.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                try:
                    self.answers.put(json.loads(line))
                except ValueError:
                    self.stderr.append("stdout: " + line)
        self.answers.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def _answer(self, wanted: int, *, timeout: float) -> Any:
        while True:
            try:
                message = self.answers.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                raise BrowserError(f"the browser did not answer within {timeout} s") from None
            if message is None:
                raise BrowserError("the browser driver exited:\n" + "".join(self.stderr[-30:]))
            if message.get("id") == wanted:
                if not message["ok"]:
                    raise BrowserError(message["error"])
                return message.get("value")

    def call(self, op: str, *, timeout: float = 30.0, **arguments: Any) -> Any:
        command_id = next(self._ids)
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"id": command_id, "op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        return self._answer(command_id, timeout=timeout)

    def context(self) -> Context:
        name = f"context{next(self._names)}"
        self.call("context", name=name)
        return Context(self, name)

    def tab(self) -> Tab:
        """A tab in a new context: a browser profile of its own (a new device)."""
        return self.context().tab()

    def errors(self) -> dict[str, list[str]]:
        return dict(self.call("errors"))

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError, ValueError):
                    pipe.close()


@dataclass
class Context:
    """A browser context: one cookie jar, any number of tabs."""

    browser: Browser
    name: str

    def tab(self) -> Tab:
        name = f"tab{next(self.browser._names)}"
        self.browser.call("page", context=self.name, name=name)
        return Tab(self, name)

    def cookies(self, url: str) -> list[dict[str, Any]]:
        return list(self.browser.call("cookies", context=self.name, url=url))

    def cookie(self, url: str, name: str = "beaker.session.id") -> dict[str, Any] | None:
        return next((c for c in self.cookies(url) if c["name"] == name), None)

    def add_cookie(self, url: str, value: str, name: str = "beaker.session.id") -> None:
        cookie = {"name": name, "value": value, "url": url, "httpOnly": True, "sameSite": "Lax"}
        self.browser.call("add_cookies", context=self.name, cookies=[cookie])

    def clear_cookies(self) -> None:
        self.browser.call("clear_cookies", context=self.name)

    def close(self) -> None:
        self.browser.call("close", context=self.name)


@dataclass
class Tab:
    """One page."""

    context: Context
    name: str

    def goto(self, url: str) -> int:
        return int(self.context.browser.call("goto", page=self.name, url=url))

    def run(self, fn: str, arg: Any = None, *, timeout: float = 30.0) -> Any:
        """Run the JavaScript function ``fn`` (source text) with ``arg`` in the page; its (awaited) result."""
        return self.context.browser.call("eval", page=self.name, fn=fn, arg=arg, timeout=timeout)

    def wait_text(self, id: str, wanted: str) -> str:
        """The text of the element ``id`` once it contains ``wanted``, waiting across navigations."""
        return str(self.context.browser.call("wait_text", page=self.name, element=id, wanted=wanted))

    def screenshot(self, name: str) -> str:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        return str(self.context.browser.call("screenshot", page=self.name, path=str(ARTIFACTS / f"{name}.png")))
