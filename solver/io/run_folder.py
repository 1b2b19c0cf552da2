"""The output folder of a run: created if missing, never silently overwritten.

Public API:
    prepare_run_folder(path, overwrite) -> Path     for a new run
    resume_run_folder(path) -> Path                 for a run resumed from a checkpoint
    claim_run_folder(folder, new_run, overwrite) -> FolderLock
                                                    the folder's lock, held for the whole run
"""

from __future__ import annotations

import os
from pathlib import Path

from solver.errors import CheckpointError, SimulationError
from solver.io.lock import FolderLock
from solver.io.run_file import RUN_PRODUCTS
from solver.io.safe_files import refuse_symlink

_PICTURES = ("final_state.png", "timeseries.png")


def prepare_run_folder(path: str | Path, overwrite: bool) -> Path:
    """Create the folder (and parents); refuse one that already holds a run unless overwrite.

    Nothing is deleted here: with overwrite, the run's own files are replaced as the new
    run writes them.

    Raises:
        SimulationError: the path is a file, holds a run (without overwrite), or cannot
            be created or written.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise SimulationError(f"output path {str(folder)!r} exists and is not a folder")
    existing = [name for name in RUN_PRODUCTS if (folder / name).exists()]
    if existing and not overwrite:
        raise SimulationError(
            f"output folder {str(folder)!r} already holds a run ({existing[0]}); "
            "pass --overwrite to replace it or --out to choose another folder"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulationError(
            f"cannot create output folder {str(folder)!r}: {exc.strerror or exc}"
        ) from None
    if not os.access(folder, os.W_OK):
        raise SimulationError(f"output folder {str(folder)!r} is not writable")
    return folder


def resume_run_folder(path: str | Path) -> Path:
    """The folder of the run to resume: it must exist and be writable (nothing is created).

    Raises:
        CheckpointError: the folder does not exist or is not a folder.
        SimulationError: it is not writable.
    """
    folder = Path(path)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise CheckpointError(
            f"--resume: output folder {str(folder)!r} {what}; give the --out of the run to resume"
        )
    if not os.access(folder, os.W_OK):
        raise SimulationError(f"output folder {str(folder)!r} is not writable")
    return folder


def claim_run_folder(folder: Path, new_run: bool, overwrite: bool) -> FolderLock:
    """Lock the folder for this run (solver/io/lock.py); for a new run, check again under
    the lock that it holds no run (unless overwrite), since one may have started meanwhile.
    Temporaries of a run file whose writer was killed are removed.

    Raises:
        SimulationError: a run is in progress in the folder, a run appeared there, or one
            of the run's files is a symbolic link.
    """
    lock = FolderLock(folder).acquire()
    try:
        if new_run:
            prepare_run_folder(folder, overwrite)
        for name in RUN_PRODUCTS:
            refuse_symlink(folder / name, "output file" if name != "checkpoints" else "output folder")
        for name in (*RUN_PRODUCTS, *_PICTURES):  # temporaries of writers that were killed
            for stale in folder.glob(f".{name}.*.tmp*"):
                stale.unlink(missing_ok=True)
    except BaseException:
        lock.release()
        raise
    return lock
