"""Helpers shared by the whole-system tests (they start the real processes)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def processes_left(marker: Path) -> str:
    """Command lines of the processes still running whose arguments name ``marker`` (the run's
    data folder: every child of the demo gets its runtime config from there)."""
    return subprocess.run(["pgrep", "-af", str(marker)], capture_output=True, text=True).stdout.strip()
