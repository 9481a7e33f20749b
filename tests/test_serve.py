"""The ``wsgisession serve`` command's argument errors: exit code 2 and a message, never a traceback.

``serve.main`` monkey-patches the standard library with gevent before it
parses its arguments, so each case runs the real command in a child process.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.servers import BIN


def wsgisession(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "wsgisession"), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_missing_ini_file_exits_2_naming_it(tmp_path: Path) -> None:
    result = wsgisession("serve", "conf/nope.ini", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "wsgisession: no such INI file: conf/nope.ini\n"


def test_a_directory_is_not_an_ini_file(tmp_path: Path) -> None:
    result = wsgisession("serve", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == f"wsgisession: no such INI file: {tmp_path}\n"


def test_no_command_exits_2_with_usage() -> None:
    result = wsgisession()
    assert result.returncode == 2
    assert result.stderr.startswith("usage: wsgisession")
    assert "the following arguments are required: command" in result.stderr


def test_serve_without_an_ini_exits_2() -> None:
    result = wsgisession("serve")
    assert result.returncode == 2
    assert "the following arguments are required: config" in result.stderr


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--port", "http", "argument --port: invalid int value: 'http'"),
    ("--stop-timeout", "soon", "argument --stop-timeout: invalid float value: 'soon'"),
])
def test_bad_option_value_exits_2_naming_the_option(option: str, value: str, expected: str) -> None:
    result = wsgisession("serve", "conf/development.ini", option, value)
    assert result.returncode == 2
    assert expected in result.stderr


def test_unknown_option_exits_2() -> None:
    result = wsgisession("serve", "conf/development.ini", "--workers", "4")
    assert result.returncode == 2
    assert "unrecognized arguments: --workers 4" in result.stderr


def test_an_ini_without_the_named_app_exits_2_naming_it(tmp_path: Path) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text("[app:main]\nuse = call:examples.counter:app_factory\n")
    result = wsgisession("serve", str(ini), "--name", "admin")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(f"wsgisession: cannot load {ini}: ")
    assert "admin" in result.stderr.splitlines()[-1]


def test_module_entry_point_matches_the_script() -> None:
    result = subprocess.run([sys.executable, "-m", "wsgisession.serve", "serve", "conf/nope.ini"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr == "wsgisession: no such INI file: conf/nope.ini\n"
