"""One HDF5 file per run: snapshots on a growing time axis, scalar time series, provenance.

Public API:
    RunWriter(path, grid, species, dtype, attrs, compression, maps)  context manager
        .write_snapshot(t, fields)      fields: host array (n_species, nx, ny, nz)
        .write_series(t, values)        values: {name: float}
        .flush()                        everything written so far, on disk (before a checkpoint)
        .counts -> (n_series, n_snapshots)
    RunWriter.resume(path, species, n_series, n_snapshots, t, note, units)
        the file of a run resumed from a checkpoint at t: reopened for appending, with
        every record written after the checkpoint removed (no gaps, no duplicates)

Layout (DESIGN.md section 8):
    /fields/time                      (n_snapshots,)           float64
    /fields/<species>                 (n_snapshots, nx, ny, nz), chunked (1, nx, ny, nz)
    /maps/<name>                      (nx, ny, nz) static maps (e.g. the vessel map w)
    /timeseries/time, /timeseries/<name>   (n_records,) float64
    run.xdmf beside the file (solver/io/xdmf.py) for ParaView
    root attributes: tumorsim_version, backend, device, name, config_json,
                     grid_shape, grid_spacing, length_unit, time_unit,
                     resumed_json (a list, one entry per resume from a checkpoint)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from solver.errors import RunFileError
from solver.grid import Grid
from solver.io.xdmf import write_xdmf

log = logging.getLogger(__name__)


class RunWriter:
    """Appends snapshots and time-series records to one HDF5 file (h5py imported lazily)."""

    def __init__(
        self,
        path: Path,
        grid: Grid,
        species: tuple[str, ...],
        dtype: np.dtype,
        attrs: dict[str, Any],
        compression: str = "gzip",
        maps: dict[str, np.ndarray] | None = None,
        units: dict[str, str] | None = None,
    ) -> None:
        import h5py

        self.path = Path(path)
        self.units = units or {}  # dataset name -> unit, stored as its `units` attribute
        self.species = species
        self.file = h5py.File(self.path, "w")
        for key, value in attrs.items():
            self.file.attrs[key] = value
        comp = {"gzip": {"compression": "gzip", "compression_opts": 4}, "lzf": {"compression": "lzf"}}.get(
            compression, {}
        )
        fields = self.file.create_group("fields", track_order=True)  # species in model order
        fields.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(256,))
        for name in species:
            fields.create_dataset(
                name,
                shape=(0,) + grid.shape,
                maxshape=(None,) + grid.shape,
                chunks=(1,) + grid.shape,
                dtype=dtype,
                shuffle=bool(comp),
                **comp,
            )
            if self.units.get(name):
                fields[name].attrs["units"] = self.units[name]
        group = self.file.create_group("maps")
        for name, array in (maps or {}).items():
            group.create_dataset(name, data=array, chunks=grid.shape, **comp)
        series = self.file.create_group("timeseries")
        series.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
        self.series: dict[str, Any] = {}

    @classmethod
    def resume(
        cls,
        path: Path,
        species: tuple[str, ...],
        n_series: int,
        n_snapshots: int,
        t: float,
        note: dict[str, Any] | None = None,
        units: dict[str, str] | None = None,
    ) -> RunWriter:
        """Reopen a run's file to continue it from a checkpoint taken at time t.

        The checkpoint was written when the file held `n_series` time-series records
        and `n_snapshots` snapshots; records after those (written after the checkpoint)
        are removed. `note` is appended to the JSON list in the `resumed_json` attribute.
        Nothing is changed unless the file holds at least those records, all at times
        up to t.

        Raises:
            RunFileError: the file is missing, unreadable, not a tumorsim run, or holds
                fewer records than the checkpoint expects.
        """
        import h5py

        path = Path(path)
        if not path.is_file():
            raise RunFileError(f"cannot resume: {str(path)!r} is missing (the checkpoint continues that file)")
        try:
            with h5py.File(path, "r") as file:  # checked read-only first: a refused file is not touched
                cls._check_resumable(file, path, species, n_series, n_snapshots, t)
            file = h5py.File(path, "r+")
        except OSError as exc:
            raise RunFileError(
                f"cannot resume: {str(path)!r} cannot be opened (damaged, or not HDF5?): {_first_line(exc)}"
            ) from None
        for group, n in (("timeseries", n_series), ("fields", n_snapshots)):
            for ds in file[group].values():
                if ds.shape[0] > n:
                    ds.resize((n,) + ds.shape[1:])
        notes = json.loads(file.attrs.get("resumed_json", "[]"))
        file.attrs["resumed_json"] = json.dumps([*notes, note or {"t": t}])
        file.flush()
        writer = cls.__new__(cls)
        writer.path, writer.units, writer.species, writer.file = path, units or {}, species, file
        writer.series = {name: ds for name, ds in file["timeseries"].items() if name != "time"}
        return writer

    @staticmethod
    def _check_resumable(
        file: Any, path: Path, species: tuple[str, ...], n_series: int, n_snapshots: int, t: float
    ) -> None:
        try:
            series_t = file["timeseries/time"][()]
            snap_t = file["fields/time"][()]
            missing = [s for s in species if s not in file["fields"]]
        except (KeyError, OSError) as exc:
            raise RunFileError(f"cannot resume: {str(path)!r} is not laid out as a tumorsim run: {_first_line(exc)}") from None
        if missing:
            raise RunFileError(f"cannot resume: {str(path)!r} has no snapshots of species {', '.join(missing)}")
        for what, times, n in (("time-series records", series_t, n_series), ("snapshots", snap_t, n_snapshots)):
            if len(times) < n or np.any(times[:n] > t):
                raise RunFileError(
                    f"cannot resume: {str(path)!r} holds {len(times)} {what}, not the {n} up to t = {t:g} "
                    "that the checkpoint was written after (was the file replaced or cut short?)"
                )

    @property
    def counts(self) -> tuple[int, int]:
        """(time-series records, snapshots) written so far."""
        return self.file["timeseries/time"].shape[0], self.file["fields/time"].shape[0]

    def flush(self) -> None:
        """Hand everything written so far to the operating system."""
        self.file.flush()

    def write_snapshot(self, t: float, fields: np.ndarray) -> None:
        group = self.file["fields"]
        n = group["time"].shape[0]
        group["time"].resize((n + 1,))
        group["time"][n] = t
        for i, name in enumerate(self.species):
            ds = group[name]
            ds.resize((n + 1,) + ds.shape[1:])
            ds[n] = fields[i]
        self.file.flush()

    def write_series(self, t: float, values: dict[str, float]) -> None:
        group = self.file["timeseries"]
        n = group["time"].shape[0]
        group["time"].resize((n + 1,))
        group["time"][n] = t
        for name, value in values.items():
            ds = self.series.get(name)
            if ds is None:
                ds = group.create_dataset(name, shape=(n,), maxshape=(None,), dtype="f8", chunks=(1024,))
                ds[:] = np.nan  # a series that starts late is NaN before its first record
                if self.units.get(name):
                    ds.attrs["units"] = self.units[name]
                self.series[name] = ds
            ds.resize((n + 1,))
            ds[n] = value
        for name, ds in self.series.items():  # a series missing from this record: NaN, same length
            if name not in values:
                ds.resize((n + 1,))
                ds[n] = np.nan

    def close(self) -> None:
        """Close the file and write the XDMF sidecar next to it, so ParaView can open the run."""
        if self.file.id.valid:
            self.file.close()
            write_xdmf(self.path)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
