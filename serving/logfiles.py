"""Append-only JSON-lines files that rotate by size and age (audit log, request log,
dead letters), safe with several processes appending to one file.

``RotatingFile.write`` appends one line with one ``write`` to a descriptor opened with
``O_APPEND`` (lines of different processes never interleave). After the write, the file
rotates when it holds ``max_bytes`` or more, or when it is older than ``max_age_s``: the
same renames as ``logging.handlers.RotatingFileHandler`` (``f`` -> ``f.1`` -> ... ->
``f.<backups>``, the oldest dropped), done under an ``flock`` of ``f.lock`` and checked
again once the lock is held, so two processes never rotate the same file twice. A
file's age counts from the last rotation (the newest backup's modification time), or
from when this process first wrote to it. ``0`` turns either limit off.

A file only one process writes (``shared=False``: a replica's request log) skips the
per-write checks for another process's rotation and counts its size itself: one
``write`` per line, as a line-buffered file would make. It is also a text stream
(``write(str)``, ``flush()``), which is what ``serving.request_log`` writes to.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path

AGE_CHECK_S = 1.0  # how often the age limit is looked at (a stat of the newest backup)


class RotatingFile:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 0,
        max_age_s: float = 0.0,
        backups: int = 5,
        mode: int = 0o600,
        durable: bool = False,
        shared: bool = True,
    ) -> None:
        self.path, self.max_bytes, self.max_age_s = Path(path), max_bytes, max_age_s
        self.backups, self.mode, self.durable = max(backups, 1), mode, durable
        self._lock = threading.Lock()
        self.shared = shared
        self._fd: int | None = None
        self._size = 0  # bytes in the current file (unshared files; shared ones ask fstat)
        self._ino: int | None = None
        self._started = time.time()
        self._next_age_check = 0.0
        self.rotations = 0  # rotations this object did (tests, metrics)

    def write(self, line: bytes | str, durable: bool | None = None) -> None:
        """Append one line (it ends with a newline), fsync'd if ``durable``, then rotate if due."""
        data = line.encode() if isinstance(line, str) else line
        with self._lock:
            fd = self._open()
            os.write(fd, data)
            self._size += len(data)
            if self.durable if durable is None else durable:
                os.fsync(fd)
            if self._due(fd):
                self._rotate()

    def flush(self) -> None:
        """Nothing to do: every line is one ``write`` to the file (the text-stream API)."""

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = self._ino = None

    def _open(self) -> int:
        """This process's descriptor, reopened when another process rotated the file away."""
        if self._fd is not None and not self.shared:
            return self._fd
        if self._fd is not None:
            try:
                if os.stat(self.path).st_ino == self._ino:
                    return self._fd
            except FileNotFoundError:
                pass
            os.close(self._fd)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.mode)
        st = os.fstat(self._fd)
        self._ino, self._size = st.st_ino, st.st_size
        return self._fd

    def _due(self, fd: int) -> bool:
        size = os.fstat(fd).st_size if self.shared else self._size
        if self.max_bytes and size >= self.max_bytes:
            return True
        if not self.max_age_s:
            return False
        now = time.time()
        if now < self._next_age_check:
            return False
        self._next_age_check = now + AGE_CHECK_S
        return now - self._born() >= self.max_age_s

    def _born(self) -> float:
        """When the current file started: the last rotation, else this process's first write."""
        try:
            return os.stat(self._backup(1)).st_mtime
        except FileNotFoundError:
            return self._started

    def _backup(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def _rotate(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return
            if st.st_ino != self._ino:
                return  # another process rotated it while this one waited for the lock
            for i in range(self.backups - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self._backup(i), self._backup(i + 1))
            os.replace(self.path, self._backup(1))
            os.utime(self._backup(1))  # the new file's age counts from now
        self._started = time.time()
        self.rotations += 1
        if self._fd is not None and not self.shared:  # its own file moved: open the new one
            os.close(self._fd)
            self._fd = None
        self._open()

    def files(self) -> list[Path]:
        """The current file and its backups that exist, newest first."""
        return [
            p
            for p in [self.path, *(self._backup(i) for i in range(1, self.backups + 1))]
            if p.exists()
        ]
