"""A local append-only spool for alert operations while Redis is unreachable.

One JSON object per line, fsync'd on append so an acknowledged publish survives a crash. A torn
last line (crash during a write) is skipped on read. Replay is safe to repeat because every
operation is idempotent in the store.

Workers that share a data folder share the file, so appends and a replay (read, apply, rewrite
what is left) hold an exclusive ``flock`` on a lock file beside it: a replay by one worker must
not rewrite away what another appended meanwhile. A lock dies with its process (SIGKILL too).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = path.with_name(path.name + ".lock")  # never removed: the file is the lock
        self._lock_fd: int | None = None
        self._count = len(self.read())

    def __len__(self) -> int:
        return self._count

    def lock(self, *, wait: bool = True) -> bool:
        """Take the spool (for a replay, or one append); ``wait=False``: False at once while
        another process holds it."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # releases the flock

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """The lock for one append, unless this spool holds it already (a replay)."""
        if self._lock_fd is not None:
            yield
            return
        self.lock()
        try:
            yield
        finally:
            self.unlock()

    def append(self, op: dict[str, Any]) -> None:
        self.extend([op])

    def extend(self, ops: list[dict[str, Any]]) -> None:
        """Append and fsync (one fsync for the batch)."""
        text = "".join(json.dumps(op, separators=(",", ":")) + "\n" for op in ops)
        with self._held(), open(self.path, "a+b") as f:
            if f.tell() > 0:  # a process that died mid-write left a torn line: start on a fresh one
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    text = "\n" + text
            f.write(text.encode())
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
