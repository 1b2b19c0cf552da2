"""One HDF5 file per run: snapshots on a growing time axis, scalar time series, provenance.

Public API:
    RunWriter(path, grid, species, dtype, attrs, compression, maps)  context manager
        .write_snapshot(t, fields)      fields: host array (n_species, nx, ny, nz)
        .write_series(t, values)        values: {name: float}

Layout (DESIGN.md section 8):
    /fields/time                      (n_snapshots,)           float64
    /fields/<species>                 (n_snapshots, nx, ny, nz), chunked (1, nx, ny, nz)
    /maps/<name>                      (nx, ny, nz) static maps (e.g. the vessel map w)
    /timeseries/time, /timeseries/<name>   (n_records,) float64
    run.xdmf beside the file (solver/io/xdmf.py) for ParaView
    root attributes: tumorsim_version, backend, device, name, config_json,
                     grid_shape, grid_spacing, length_unit, time_unit
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

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
