"""A local append-only spool for alert operations while Redis is unreachable.

One JSON object per line, fsync'd on append so an acknowledged publish survives a crash. A torn
last line (crash during a write) is skipped on read. Replay is safe to repeat because every
operation is idempotent in the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._count = len(self.read())

    def __len__(self) -> int:
        return self._count

    def append(self, op: dict[str, Any]) -> None:
        self.extend([op])

    def extend(self, ops: list[dict[str, Any]]) -> None:
        """Append and fsync (one fsync for the batch)."""
        text = "".join(json.dumps(op, separators=(",", ":")) + "\n" for op in ops)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        self._count += len(ops)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        ops = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                ops.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # torn write at a crash
        return ops

    def replace(self, ops: list[dict[str, Any]]) -> None:
        """Keep only ``ops`` (those not yet replayed), atomically."""
        if not ops:
            self.path.unlink(missing_ok=True)
            self._count = 0
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(op, separators=(",", ":")) + "\n" for op in ops)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._count = len(ops)
