"""Fixtures of the whole-system tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def redis_server() -> str:
    """The system runs its own private ``redis-server`` (as ``camera-hub demo`` does): skipped
    where there is none on PATH (``scripts/setup.sh`` installs it)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server not on PATH (Debian: apt-get install redis-server)")
    return exe
