"""Initial fields read from a snapshot of an earlier run (a branch): {run: DIR, time: last | T}.

Public API:
    read_snapshot(run, field, time, shape, *, what) -> ndarray (float64)

Reads DIR/run.h5 (or the .h5 file named) with h5py directly: the run file's layout
(/fields/time, /fields/<name>, the grid_shape attribute) is that of solver/io/run_file.py,
which this layer may not import (fields come before io in the data flow). A snapshot is
taken at its exact time only (within solver.timing's tolerance for times written as
text); the message of a time that is not one lists the snapshot times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from solver.errors import ConfigError
from solver.hdf5_safety import outside_references
from solver.text import first_line
from solver.timing import time_tolerance

_SHOWN_TIMES = 12  # snapshot times listed in a message, at most


def read_snapshot(run: Path, field: str, time: str | float, shape: tuple[int, ...], *, what: str) -> np.ndarray:
    """The snapshot of `field` at `time` ("last" or a snapshot time) of the run at `run`.

    Raises:
        ConfigError: no run file there, not a run file, no such field, no snapshot at that
            time, or a grid of another shape (both shapes named).
    """
    import h5py

    path = run / "run.h5" if run.is_dir() else run
    if not path.is_file():
        raise ConfigError(f"{what}: no run at {str(run)!r} (expected a run folder holding run.h5, or a run.h5)")
    try:
        fh = _open(h5py, path)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {str(path)!r} as HDF5: {first_line(exc)}") from None
    with fh:
        outside = outside_references(fh)
        if outside is not None:
            raise ConfigError(f"{what}: {str(path)!r} reaches outside itself ({outside}); not read")
        if "fields" not in fh or "time" not in fh["fields"]:
            raise ConfigError(f"{what}: {str(path)!r} has no /fields/time: not a tumorsim run file")
        names = [n for n in fh["fields"] if n != "time"]
        if field not in names:
            raise ConfigError(f"{what}: the run in {str(run)!r} has no field {field!r}; its fields are "
                              f"{', '.join(names) or 'none'} (field: NAME picks one)")
        times = np.asarray(fh["fields/time"][()], dtype=np.float64)
        stored = tuple(int(n) for n in np.asarray(fh.attrs.get("grid_shape", fh["fields"][field].shape[1:])))
        if stored != tuple(shape):
            raise ConfigError(f"{what}: the run in {str(run)!r} has grid {stored}; this config's grid is "
                              f"{tuple(shape)}: a branch starts on the grid of the run it comes from")
        index = _snapshot_index(times, time, what, run)
        values = np.asarray(fh["fields"][field][index], dtype=np.float64)
    if values.shape != tuple(shape):
        raise ConfigError(f"{what}: /fields/{field} of {str(path)!r} has shape {values.shape}, not {tuple(shape)}")
    return values


def _open(h5py: Any, path: Path) -> Any:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise
    return h5py.File(path, "r", swmr=True)  # a run still writes it (or was killed while it did)


def _snapshot_index(times: np.ndarray, time: str | float, what: str, run: Path) -> int:
    if times.size == 0:
        raise ConfigError(f"{what}: the run in {str(run)!r} holds no snapshot yet")
    if time == "last":
        return int(times.size - 1)
    matches = np.flatnonzero(np.abs(times - float(time)) <= time_tolerance(float(time)))
    if matches.size == 0:
        shown = ", ".join(f"{t:g}" for t in times[:_SHOWN_TIMES]) + (", ..." if times.size > _SHOWN_TIMES else "")
        raise ConfigError(f"{what}: the run in {str(run)!r} has no snapshot at t = {float(time):g}; its snapshots "
                          f"are at {shown} (or time: last)")
    return int(matches[0])
