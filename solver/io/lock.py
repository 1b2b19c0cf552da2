"""The lock on a run's output folder: one run (new or resumed) writes a folder at a time.

Public API:
    LOCK_FILE                       ".tumorsim.lock", inside the run folder
    FolderLock(folder)              .acquire() -> self, .release(); a context manager
    LockHolder(pid, host, started)  who holds (or last held) a folder's lock; .alive()
    lock_holder(folder) -> LockHolder | None   the live holder of a folder's lock, for readers

The lock is an exclusive flock(2) on DIR/.tumorsim.lock, taken without waiting for the
whole of a run: from before the folder is checked for a previous run until run.h5 and the
checkpoints are closed. The file says who holds it (pid, host, start time), so a second
run, or a resume, in that folder is refused with "run in progress (pid N, host H)". The
kernel releases a flock when its process dies (SIGKILL, a crash, a node's reboot drops
its NFS locks), so a lock file left by a dead process is stale by construction: the next
run takes it over and says so in the log. The holder removes the file on release (while
still holding it; a waiter that opened the removed file finds it gone and tries again).

Readers (plot --follow) never take the lock: `lock_holder` reads the file and, on the same
host, checks that the process lives.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time as wallclock
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from solver.errors import SimulationError

log = logging.getLogger(__name__)

LOCK_FILE = ".tumorsim.lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class LockHolder:
    """Who holds, or last held, a folder's lock."""

    pid: int
    host: str
    started: str = ""

    def alive(self) -> bool | None:
        """Whether the holder's process runs (None: on another host, not known here)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process
            return True
        return True

    def describe(self) -> str:
        since = f", since {self.started}" if self.started else ""
        return f"pid {self.pid}, host {self.host}{since}"


def _read_holder(fd: int) -> LockHolder | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode("utf-8"))
        return LockHolder(int(data["pid"]), str(data["host"]), str(data.get("started", "")))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


class FolderLock:
    """An exclusive, non-waiting lock on a run folder (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock, or refuse at once.

        Raises:
            SimulationError: another process holds it ("run in progress (pid N, host H)"),
                or the lock file cannot be created (e.g. a symbolic link in its place).
        """
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o644)
            except OSError as exc:
                why = "a symbolic link is in its place" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
                raise SimulationError(f"cannot lock output folder {str(self.folder)!r}: {why}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_holder(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise SimulationError(f"cannot lock output folder {str(self.folder)!r}: "
                                          f"{exc.strerror or exc}") from None
                who = f" ({holder.describe()})" if holder else ""
                raise SimulationError(
                    f"output folder {str(self.folder)!r}: run in progress{who}; wait for it to end or stop it "
                    "(SIGTERM writes a checkpoint), or choose another --out"
                ) from None
            if not self._still_named(fd):  # removed by its previous holder after we opened it
                os.close(fd)
                continue
            stale = _read_holder(fd)
            if stale is not None:
                log.info("output folder %s: took over the lock left by %s (no longer running)", self.folder,
                         stale.describe())
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": wallclock.strftime("%Y-%m-%dT%H:%M:%S%z")}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(record).encode("utf-8"))
            self.fd = fd
            return self
        raise SimulationError(f"cannot lock output folder {str(self.folder)!r}: its lock file keeps changing")

    def _still_named(self, fd: int) -> bool:
        try:
            named = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Remove the lock file and drop the lock (a no-op when not held)."""
        if self.fd is None:
            return
        try:
            if self._still_named(self.fd):
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def lock_holder(folder: str | os.PathLike[str]) -> LockHolder | None:
    """The process that holds the folder's lock now, as far as can be told without taking
    it: the lock file's holder unless it is known to be dead; None when there is none."""
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    except OSError:
        return None
    try:
        holder = _read_holder(fd)
    finally:
        os.close(fd)
    if holder is None or holder.alive() is False:
        return None
    return holder
