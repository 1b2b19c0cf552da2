"""Writing a run's files without following symbolic links, and durably.

Public API:
    write_file(path, data)             bytes to `path`: a new temporary beside it (O_EXCL,
                                       O_NOFOLLOW), fsynced, renamed over `path`, folder fsynced
    temporary_beside(path) -> Path     a new empty file in path's folder, to be renamed over it
    replaced(path) -> context manager  yields a temporary to write by name (pictures); on
                                       success it is renamed over `path`, else removed
    fsync_path(path, directory=False)
    refuse_symlink(path, what)         SimulationError when `path` is a symbolic link

A symbolic link planted where a run writes (out/run.h5 -> ~/thesis.tex) would make a
plain open() write through it and clobber its target. Every file a run writes is created
as a new file (O_CREAT | O_EXCL: a link in its place makes the open fail, never followed)
and renamed into place; a rename replaces a link itself, not what it points to.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from solver.errors import SimulationError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def fsync_path(path: str | os.PathLike[str], directory: bool = False) -> None:
    """fsync a file (or, with directory=True, a folder: its entries) by path."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_beside(path: str | os.PathLike[str]) -> Path:
    """A new, empty, hidden file in the folder of `path` (created with O_EXCL), same suffix."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o644)
    return Path(name)


def write_file(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` durably and atomically, never through a link at `path`.

    Raises:
        OSError: the folder cannot be written (disk full...); the temporary is removed and
            a previous file at `path` is untouched.
    """
    path = Path(path)
    temporary = temporary_beside(path)
    try:
        fd = os.open(temporary, os.O_WRONLY | _NOFOLLOW | _CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_path(path.parent, directory=True)
    return path


@contextmanager
def replaced(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary beside `path` for a writer that takes a file name (matplotlib, VTK);
    renamed over `path` when the block succeeds, removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_beside(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def refuse_symlink(path: str | os.PathLike[str], what: str) -> None:
    """Refuse to use `path` when it is a symbolic link (a run's own files never are).

    Raises:
        SimulationError: naming the link and its target.
    """
    path = Path(path)
    if path.is_symlink():
        raise SimulationError(f"{what} {str(path)!r} is a symbolic link (to {os.readlink(path)!r}); tumorsim does "
                              "not write through links: remove it")
