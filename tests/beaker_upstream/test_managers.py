"""Beaker's ``tests/test_managers/base.py`` session tests on our stores (upstream runs them on each of Beaker's)."""
from tests.beaker_upstream import managers_base as base


class TestMemory(base.CacheManagerBaseTests):
    CACHE_ARGS = {}


class TestFile(base.CacheManagerBaseTests):
    CACHE_ARGS = {'data_dir': './cache/managers'}
