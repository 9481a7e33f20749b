"""Beaker's middleware tests, ported (see ``port.py``): their temporary directory goes at the end."""
from __future__ import annotations

import shutil
from typing import Iterator

import pytest

from tests.beaker_upstream import port


@pytest.fixture(scope="session", autouse=True)
def _remove_the_data_dirs() -> Iterator[None]:
    yield
    shutil.rmtree(port.root(), ignore_errors=True)
