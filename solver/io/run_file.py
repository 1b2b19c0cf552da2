"""The run file, DIR/run.h5: its layout, written and read in this one module.

Public API:
    RUN_FILE, RUN_PRODUCTS                  "run.h5"; what a run writes into its folder
    RunWriter(path, grid, species, dtype, attrs, compression, maps, units, series)  context manager
        .write_snapshot(t, fields)          fields: host array (n_species, nx, ny, nz)
        .write_series(t, values)            values: {name: float}, names among `series`
        .flush() / .fsync()                 everything written so far, to the OS / on the disk
        .counts -> (n_series, n_snapshots)
        .abandon()                          after a failed write: never touch the disk again
    RunWriter.adopt(...)                    a writer for a file built by solver/io/run_resume.py
        (which continues the file of a run resumed from a checkpoint)
    open_run_file(path) -> h5py.File        read-only, also while a run writes it (SWMR)
    load_run(path) -> RunData               metadata and time series; snapshots on demand
    RunData.field(name, index) / .map(name) / .time_index(time) / .field_range(name)
    read_layout(h5file, path) -> RunLayout  shapes, dtypes, times and spacing, checked
    resolve_run_path(path) -> Path          a run folder or its run.h5

Layout:
    /fields/time                      (n_snapshots,)           float64
    /fields/<species>                 (n_snapshots, nx, ny, nz), chunked (1, nx, ny, nz)
    /maps/<name>                      (nx, ny, nz) static maps (e.g. the vessel map w)
    /timeseries/time, /timeseries/<name>   (n_records,) float64
    /attributes_sha256                (32,) uint8: SHA-256 of the root attributes (attributes_digest)
    each dataset: a `units` attribute where the model gives one; a fletcher32 checksum
    root attributes: tumorsim_version, backend, device, name, config_json,
                     grid_shape, grid_spacing, length_unit, time_unit, dt, dt_limited_by,
                     dose_times_json, resumed_json (a list, one entry per resume),
                     run_hash (its physics and maps: solver/io/checkpoint.run_hash) that
                     its checkpoints must match; text attributes as fixed-length UTF-8
    HDF5's newest format (libver "latest"): its metadata carries checksums too
    run.xdmf beside the file (solver/io/xdmf.py) for ParaView

Live reading: the writer keeps the file in SWMR mode, so readers opening it with
swmr=True (every reader here does) see every published record while the run goes on; the
number of snapshots is the length of /fields/time and of records that of
/timeseries/time (a dataset may be one record ahead while it is written).

Snapshots are read one at a time (each is one HDF5 chunk); the file is opened for each
read and closed at once, so a RunData holds no open handle. Grid convention: cell
(i, j, k) holds the value at its centre ((i+1/2) hx, (j+1/2) hy, (k+1/2) hz).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import re
import time as wallclock
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from solver.errors import RunFileError
from solver.grid import Grid
from solver.io.safe_files import fsync_path
from solver.text import first_line, with_unit

log = logging.getLogger(__name__)

RUN_FILE = "run.h5"
# What a run writes into its folder; any of them present means the folder holds a run.
RUN_PRODUCTS = (RUN_FILE, "run.xdmf", "config.yaml", "checkpoints")


# ------------------------------------------------------------------------------ writing

LIBVER = "latest"  # object headers, B-trees and the superblock checksummed; needed for SWMR
_SERIES_FLUSH_SECONDS = 1.0  # readers see time-series records at most this late
_H5_ERRNO = re.compile(r"errno = (\d+), error message = '([^']*)'")


ATTRIBUTES_DIGEST = "attributes_sha256"  # a dataset: root attributes live where HDF5 has no checksum
_UNSEALED = ("resumed_json",)  # root attributes a resume changes


def attributes_digest(attrs: Mapping[str, Any]) -> np.ndarray:
    """SHA-256 of a run file's root attributes (JSON texts compared as parsed, key order
    aside; resumed_json left out), as 32 bytes for a checksummed dataset.

    HDF5 keeps more than a few attributes of one object in its "dense" storage, a fractal
    heap whose blocks carry no checksum: a flipped bit in config_json would go unnoticed.
    The digest, in a fletcher32 dataset, makes it noticed (solver/io/run_resume.py)."""
    canonical = {}
    for key in sorted(attrs):
        if key in _UNSEALED:
            continue
        value = attrs[key]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and key.endswith("_json"):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        elif isinstance(value, (np.ndarray, np.generic)):
            value = [str(np.asarray(value).dtype), np.asarray(value).tolist()]
        canonical[key] = value
    text = json.dumps(canonical, sort_keys=True, default=str)
    return np.frombuffer(hashlib.sha256(text.encode("utf-8")).digest(), dtype=np.uint8)


def _attr(value: Any) -> Any:
    """Text as fixed-length UTF-8 bytes: stored inside the checksummed object header (h5py's
    variable-length strings live in HDF5's global heap, which has no checksum)."""
    return np.bytes_(value.encode("utf-8")) if isinstance(value, str) else value


def as_os_error(exc: BaseException, path: Path) -> OSError:
    """An h5py error (OSError or RuntimeError, the errno buried in its text) as a plain OSError."""
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        return OSError(exc.errno, exc.strerror, str(path))
    found = _H5_ERRNO.search(str(exc))
    if found:
        return OSError(int(found.group(1)), found.group(2), str(path))
    return OSError(errno.EIO, first_line(exc), str(path))


class RunWriter:
    """Appends snapshots and time-series records to one HDF5 file (h5py imported lazily).

    The file is built as a temporary beside `path` (created with O_EXCL: an existing file
    or a planted link is never opened for writing), with every dataset it will hold, then
    switched to HDF5's single-writer/multiple-reader mode (SWMR) and renamed over `path`:
    from then on readers (`load_run`, `tumorsim plot`, h5py with swmr=True) may open it
    while the run writes. A record is published by its time entry: the values are written
    (and flushed) first, the time last, so a reader never sees a time without its values.
    `series` names every time series the run will record (SWMR cannot add datasets later).

    A failed write (disk full) abandons the file: HDF5's descriptor is pointed at
    /dev/null so that closing it (now or at exit) cannot touch the disk or crash on the
    half-written state; what is on disk stays as it was at the last flush, which SWMR keeps
    readable. The error is raised as an OSError naming the cause.
    """

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
        series: Iterable[str] = (),
    ) -> None:
        import h5py

        self.path = Path(path)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        file = h5py.File(temporary, "x", libver=LIBVER)
        self._adopt(file, species, units)
        try:
            for key, value in attrs.items():
                file.attrs[key] = _attr(value)
            file.create_dataset(ATTRIBUTES_DIGEST, data=attributes_digest(dict(file.attrs)), chunks=(32,),
                                fletcher32=True)
            comp = {"gzip": {"compression": "gzip", "compression_opts": 4}, "lzf": {"compression": "lzf"}}.get(
                compression, {}
            )
            fields = file.create_group("fields", track_order=True)  # species in model order
            for name in species:
                fields.create_dataset(name, shape=(0,) + grid.shape, maxshape=(None,) + grid.shape,
                                      chunks=(1,) + grid.shape, dtype=dtype, shuffle=bool(comp), fletcher32=True,
                                      **comp)
                if self.units.get(name):
                    fields[name].attrs["units"] = _attr(self.units[name])
            fields.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(256,), fletcher32=True)
            group = file.create_group("maps")
            for name, array in (maps or {}).items():
                group.create_dataset(name, data=array, chunks=grid.shape, fletcher32=True, **comp)
            timeseries = file.create_group("timeseries", track_order=True)
            timeseries.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,),
                                      fletcher32=True)
            for name in series:
                ds = timeseries.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,),
                                               fletcher32=True)
                if self.units.get(name):
                    ds.attrs["units"] = _attr(self.units[name])
                self.series[name] = ds
            self._publish(temporary)
        except BaseException as exc:
            self.abandon()
            temporary.unlink(missing_ok=True)
            if isinstance(exc, (OSError, RuntimeError)):
                raise as_os_error(exc, self.path) from None
            raise

    def _adopt(self, file: Any, species: tuple[str, ...], units: dict[str, str] | None) -> None:
        self.file = file
        self.species = species
        self.units = units or {}  # dataset name -> unit, stored as its `units` attribute
        self.series: dict[str, Any] = {}
        self.abandoned = False
        self._series_flushed = wallclock.monotonic()

    def _publish(self, temporary: Path) -> None:
        """Enter SWMR mode, then rename the finished temporary over the run file."""
        self.file.flush()
        self.file.swmr_mode = True
        os.replace(temporary, self.path)
        fsync_path(self.path.parent, directory=True)

    @classmethod
    def adopt(cls, file: Any, path: Path, species: tuple[str, ...], units: dict[str, str] | None,
              temporary: Path) -> RunWriter:
        """A writer for a file built elsewhere (solver/io/run_resume.py) at `temporary`,
        published as `path` here."""
        writer = cls.__new__(cls)
        writer.path = Path(path)
        writer._adopt(file, species, units)
        writer.series = {name: ds for name, ds in file["timeseries"].items() if name != "time"}
        try:
            writer._publish(temporary)
        except (OSError, RuntimeError) as exc:
            writer.abandon()
            temporary.unlink(missing_ok=True)
            raise as_os_error(exc, writer.path) from None
        return writer

    @property
    def counts(self) -> tuple[int, int]:
        """(time-series records, snapshots) written so far."""
        return self.file["timeseries/time"].shape[0], self.file["fields/time"].shape[0]

    def _guarded(self, action: Any) -> None:
        if self.abandoned:
            raise OSError(errno.EIO, "the run file was abandoned after a failed write", str(self.path))
        try:
            action()
        except (OSError, RuntimeError) as exc:
            self.abandon()
            raise as_os_error(exc, self.path) from None

    def flush(self) -> None:
        """Hand everything written so far to the operating system (every record published)."""
        self._guarded(self._flush_all)

    def fsync(self) -> None:
        """flush(), then the file's data on the disk (before a checkpoint that counts its records)."""
        self._guarded(lambda: (self._flush_all(), os.fsync(self.file.id.get_vfd_handle())))

    def _flush_all(self) -> None:
        for ds in self.series.values():
            ds.flush()
        self.file["timeseries/time"].flush()
        self.file.flush()
        self._series_flushed = wallclock.monotonic()

    def write_snapshot(self, t: float, fields: np.ndarray) -> None:
        def write() -> None:
            group = self.file["fields"]
            n = group["time"].shape[0]
            for i, name in enumerate(self.species):
                ds = group[name]
                ds.resize((n + 1,) + ds.shape[1:])
                ds[n] = fields[i]
                ds.flush()
            group["time"].resize((n + 1,))
            group["time"][n] = t
            group["time"].flush()  # published: readers now see this snapshot
            self.file.flush()

        self._guarded(write)

    def write_series(self, t: float, values: dict[str, float]) -> None:
        """One record of every series declared at creation (a series missing from `values`
        is NaN in it); flushed for readers at most every second."""
        unknown = [name for name in values if name not in self.series]
        if unknown:
            raise RunFileError(f"{self.path}: time series {', '.join(unknown)} were not declared when the file "
                               "was created")

        def write() -> None:
            group = self.file["timeseries"]
            n = group["time"].shape[0]
            for name, ds in self.series.items():
                ds.resize((n + 1,))
                ds[n] = values.get(name, np.nan)
            group["time"].resize((n + 1,))
            group["time"][n] = t
            if wallclock.monotonic() - self._series_flushed >= _SERIES_FLUSH_SECONDS:
                self._flush_all()

        self._guarded(write)

    def abandon(self) -> None:
        """Give up the file after a failed write: HDF5's descriptor is pointed at /dev/null
        and the file closed, so nothing of HDF5's broken state reaches the disk or crashes at
        exit. Idempotent."""
        if getattr(self, "abandoned", False):
            return
        self.abandoned = True
        try:
            if self.file.id.valid:
                null = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(null, self.file.id.get_vfd_handle())
                finally:
                    os.close(null)
                self.file.close()
        except (OSError, RuntimeError, ValueError) as exc:  # nothing more to do: the disk holds the last flush
            log.debug("closing the abandoned %s: %s", self.path, first_line(exc))

    def close(self) -> None:
        """Close the file (the run then writes the XDMF sidecar beside it: solver/io/xdmf.py)."""
        if self.abandoned or not self.file.id.valid:
            return
        self._guarded(lambda: (self._flush_all(), self.file.close()))

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
            return
        try:  # an error is on its way out: close quietly, never replace it with another
            self.close()
        except OSError as error:
            log.warning("closing %s: %s", self.path, error)


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class RunLayout:
    """Shapes, dtypes, times and grid of a run file (what the XDMF sidecar describes)."""

    name: str
    times: np.ndarray
    fields: dict[str, tuple[tuple[int, ...], np.dtype]]
    maps: dict[str, tuple[tuple[int, ...], np.dtype]]
    grid_shape: tuple[int, int, int]
    spacing: tuple[float, float, float]


def read_layout(fh: Any, h5_path: Path) -> RunLayout:
    """The layout of an open run file, checked for consistency (maps of another shape are
    left out with a warning).

    Raises:
        RunFileError: not a tumorsim run file, or fields of a shape other than the grid's.
    """
    import h5py

    if "fields" not in fh or "time" not in fh["fields"]:
        raise RunFileError(f"{h5_path} has no /fields/time: not a tumorsim run file")
    times = np.asarray(fh["fields/time"][...], dtype=np.float64).reshape(-1)
    fields: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    for name, ds in fh["fields"].items():
        if name != "time" and isinstance(ds, h5py.Dataset):
            fields[name] = (tuple(int(s) for s in ds.shape), ds.dtype)
    maps: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    if "maps" in fh:
        for name, ds in fh["maps"].items():
            if isinstance(ds, h5py.Dataset):
                maps[name] = (tuple(int(s) for s in ds.shape), ds.dtype)
    attrs = dict(fh.attrs)
    grid_shape = _grid_shape(attrs, h5_path)
    for name, (shape, _) in fields.items():
        _check_field_shape(h5_path, name, shape, grid_shape, times.size)
    for name in list(maps):
        if maps[name][0] != grid_shape:
            log.warning("%s: skipping /maps/%s of shape %s (grid is %s)", h5_path, name, maps[name][0], grid_shape)
            del maps[name]
    name = _plain(attrs.get("name")) or h5_path.stem
    return RunLayout(str(name), times, fields, maps, grid_shape, _grid_spacing(attrs, h5_path))


TimeSpec = str | float | int | None


@dataclass(frozen=True)
class RunData:
    """What one run file holds, with snapshots and maps read on demand.

    Attributes:
        path: The HDF5 file.
        name: The run's name (root attribute ``name``, else the file's stem).
        species: Field names under ``/fields`` in the file's order, ``time`` excluded.
        times: Snapshot times, one per snapshot.
        grid_shape: Cells along x, y, z.
        spacing: Cell sizes (hx, hy, hz) in ``length_unit``.
        length_unit: Length unit of ``spacing`` (may be empty).
        time_unit: Unit of ``times`` and ``series_time`` (may be empty).
        map_names: Static maps under ``/maps`` (e.g. ``w``, the vessel map).
        series_time: Times of the scalar time series.
        series: Scalar time series by name, each as long as ``series_time``.
        dose_times: Dose times per agent, from ``dose_times_json`` (empty when absent).
        field_units: Units of fields and maps found as a ``units`` attribute on their dataset.
        series_units: Units of time series found the same way.
        attrs: The remaining root attributes (version, backend, device, config_json).
    """

    path: Path
    name: str
    species: tuple[str, ...]
    times: np.ndarray
    grid_shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    length_unit: str
    time_unit: str
    map_names: tuple[str, ...]
    series_time: np.ndarray
    series: Mapping[str, np.ndarray]
    dose_times: Mapping[str, tuple[float, ...]]
    field_units: Mapping[str, str] = field(default_factory=dict)
    series_units: Mapping[str, str] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_snapshots(self) -> int:
        """Number of snapshots in ``/fields``."""
        return int(self.times.size)

    @property
    def tumour_field(self) -> str:
        """The field whose level set is the tumour boundary: ``T`` if present, else the first."""
        if "T" in self.species:
            return "T"
        if not self.species:
            raise RunFileError(f"{self.path} holds no fields under /fields")
        return self.species[0]

    @property
    def domain_bounds(self) -> tuple[float, float, float, float, float, float]:
        """The whole domain (0, nx hx, 0, ny hy, 0, nz hz), in ``length_unit``."""
        (nx, ny, nz), (hx, hy, hz) = self.grid_shape, self.spacing
        return (0.0, nx * hx, 0.0, ny * hy, 0.0, nz * hz)

    def check_field(self, name: str) -> str:
        """Return ``name`` if it is a species or a map of this run.

        Raises:
            RunFileError: Unknown name; the message lists the fields and maps present.
        """
        if name in self.species or name in self.map_names:
            return name
        present = ", ".join(self.species) or "none"
        maps = ", ".join(self.map_names) or "none"
        raise RunFileError(
            f"unknown field {name!r} in {self.path.name}: fields are {present}; maps are {maps}"
        )

    def check_series(self, names: Iterable[str]) -> list[str]:
        """Return ``names`` as a list if each is a time series of this run.

        Raises:
            RunFileError: A name is unknown; the message lists the series present.
        """
        names = list(names)
        missing = [n for n in names if n not in self.series]
        if missing:
            present = ", ".join(self.series) or "none"
            raise RunFileError(
                f"unknown time series {', '.join(map(repr, missing))} in {self.path.name}: "
                f"series are {present}"
            )
        return names

    def time_index(self, time: TimeSpec = "last") -> int:
        """The snapshot index for a requested time.

        Args:
            time: ``"last"`` (or None), ``"first"``, or a time in ``time_unit`` (number or
                numeric string); a time between snapshots picks the nearest one.

        Raises:
            RunFileError: No snapshots, an unparsable time, or one outside the snapshots.
        """
        if self.n_snapshots == 0:
            raise RunFileError(f"{self.path.name} holds no snapshots")
        if time is None or (isinstance(time, str) and time.strip().lower() == "last"):
            return self.n_snapshots - 1
        if isinstance(time, str) and time.strip().lower() == "first":
            return 0
        try:
            value = float(time)
        except (TypeError, ValueError):
            raise RunFileError(f"time must be 'last', 'first' or a number, not {time!r}") from None
        first, last = float(self.times[0]), float(self.times[-1])
        slack = 1e-9 * max(1.0, abs(first), abs(last))
        if not math.isfinite(value) or value < first - slack or value > last + slack:
            unit = f" {self.time_unit}" if self.time_unit else ""
            raise RunFileError(
                f"time {value:g}{unit} is outside the snapshots of {self.path.name} "
                f"({first:g} to {last:g}{unit})"
            )
        index = int(np.argmin(np.abs(self.times - value)))
        if not math.isclose(float(self.times[index]), value, rel_tol=1e-9, abs_tol=slack):
            log.info(
                "time %g: nearest snapshot is %d at t = %g", value, index, self.times[index]
            )
        return index

    def field(self, name: str, index: int = -1) -> np.ndarray:
        """One snapshot of a species, or a static map, as an (nx, ny, nz) array.

        Args:
            name: A species name or a map name.
            index: Snapshot index (negative counts from the end); ignored for maps.

        Raises:
            RunFileError: Unknown name or index out of range.
        """
        self.check_field(name)
        if name not in self.species:
            return self.map(name)
        n = self.n_snapshots
        if not -n <= index < n:
            raise RunFileError(
                f"snapshot {index} out of range: {self.path.name} holds {n} snapshots"
            )
        with _open(self.path) as fh:
            return np.asarray(fh["fields"][name][index % n])

    def map(self, name: str) -> np.ndarray:
        """A static map under ``/maps`` (e.g. ``w``, the vessel map) as an (nx, ny, nz) array.

        Raises:
            RunFileError: No such map; the message lists the maps present.
        """
        if name not in self.map_names:
            maps = ", ".join(self.map_names) or "none"
            raise RunFileError(f"no map {name!r} in {self.path.name}: maps are {maps}")
        with _open(self.path) as fh:
            return np.asarray(fh["maps"][name][...])

    def field_range(self, name: str) -> tuple[float, float]:
        """(min, max) of a field over every snapshot (of the map, for a map), NaNs ignored."""
        self.check_field(name)
        if name not in self.species:
            data = self.map(name)
            return float(np.nanmin(data)), float(np.nanmax(data))
        low, high = math.inf, -math.inf
        with _open(self.path) as fh:
            ds = fh["fields"][name]
            for i in range(self.n_snapshots):
                snap = ds[i]
                low, high = min(low, float(np.nanmin(snap))), max(high, float(np.nanmax(snap)))
        return low, high

    def time_label(self, index: int) -> str:
        """``"t = 3.5 day"`` for snapshot ``index``."""
        t = float(self.times[index])
        return f"t = {t:.4g} {self.time_unit}".rstrip()

    def series_label(self, name: str) -> str:
        """A time series' name for an axis, with its unit when recorded (``"tumour burden"``)."""
        return with_unit(name.replace("_", " "), self.series_units.get(name, ""))

    def field_label(self, name: str) -> str:
        """The field's name with its unit when the file records one (``"T [cells/µm^3]"``)."""
        return with_unit(name, self.field_units.get(name, ""))


def load_run(path: str | os.PathLike[str]) -> RunData:
    """Read a run file's metadata and time series (snapshots stay on disk until asked for).

    Args:
        path: The run's HDF5 file, or its output folder (``DIR/run.h5``, else the only
            ``*.h5`` in it).

    Raises:
        RunFileError: Missing file, not HDF5, or not in the run-file layout.
    """
    h5_path = resolve_run_path(path)
    with _open(h5_path) as fh:
        layout = read_layout(fh, h5_path)
        attrs = {key: _plain(value) for key, value in fh.attrs.items()}
        species = tuple(layout.fields)
        units = {name: _unit_attr(fh["fields"][name]) for name in species}
        map_names = tuple(fh["maps"]) if "maps" in fh else ()
        units.update({name: _unit_attr(fh["maps"][name]) for name in map_names})
        series_time, series = _read_series(fh, h5_path)
        series_units = {name: _unit_attr(fh["timeseries"][name]) for name in series}
    for key in ("grid_shape", "grid_spacing"):
        attrs.pop(key, None)
    run = RunData(
        path=h5_path,
        name=str(attrs.pop("name", "") or h5_path.parent.name or h5_path.stem),
        species=species,
        times=layout.times,
        grid_shape=layout.grid_shape,
        spacing=layout.spacing,
        length_unit=str(attrs.pop("length_unit", "") or ""),
        time_unit=str(attrs.pop("time_unit", "") or ""),
        map_names=map_names,
        series_time=series_time,
        series=series,
        dose_times=_dose_times(attrs.pop("dose_times_json", None), h5_path),
        field_units={k: v for k, v in units.items() if v},
        series_units={k: v for k, v in series_units.items() if v},
        attrs=attrs,
    )
    log.debug("loaded %s: %d snapshots of %s, series %s", h5_path, run.n_snapshots, species, list(series))
    return run


def resolve_run_path(path: str | os.PathLike[str]) -> Path:
    """The HDF5 file for a run given as a file or as its output folder."""
    path = Path(path)
    if path.is_dir():
        default = path / RUN_FILE
        if default.is_file():
            return default
        candidates = sorted(path.glob("*.h5"))
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise RunFileError(f"no run file (*.h5) in folder {path}")
        names = ", ".join(c.name for c in candidates)
        raise RunFileError(f"several run files in {path} ({names}): name one")
    if not path.is_file():
        raise RunFileError(f"run file not found: {path}")
    return path


def open_run_file(path: Path) -> Any:
    """A run file opened read-only, also while a run writes it (then as an SWMR reader).

    Raises:
        RunFileError: missing, locked by a writer that is not in SWMR mode, or not HDF5.
    """
    import h5py

    if not path.is_file():
        raise RunFileError(f"run file not found: {path}")
    try:
        try:
            return h5py.File(path, "r")  # fails fast on a damaged checksum
        except OSError as exc:
            if "already open for write" not in str(exc):
                raise
        return h5py.File(path, "r", swmr=True)  # a run writes it (or was killed while it did)
    except OSError as exc:
        if exc.errno == errno.EAGAIN or "unable to lock file" in str(exc):
            raise RunFileError(f"{path} is open for writing in another process (an HDF5 file lock): close it "
                               "there first") from None
        raise RunFileError(f"cannot open {path} as HDF5: {first_line(exc)}") from None


class _open:
    """Open a run file read-only, turning h5py's OSError into a one-line RunFileError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: Any = None

    def __enter__(self) -> Any:
        self.fh = open_run_file(self.path)
        return self.fh

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (str, float, int or list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unit_attr(ds: Any) -> str:
    for key in ("units", "unit"):
        if key in ds.attrs:
            return str(_plain(ds.attrs[key]))
    return ""


def _grid_shape(attrs: dict[str, Any], h5_path: Path) -> tuple[int, int, int]:
    shape = attrs.pop("grid_shape", None)
    values = np.asarray(shape if shape is not None else [], dtype=np.int64).reshape(-1)
    if values.size != 3 or np.any(values < 1):
        raise RunFileError(f"{h5_path}: grid_shape attribute {shape!r} is not three positive ints")
    return (int(values[0]), int(values[1]), int(values[2]))


def _grid_spacing(attrs: dict[str, Any], h5_path: Path) -> tuple[float, float, float]:
    spacing = attrs.pop("grid_spacing", None)
    values = np.asarray(spacing if spacing is not None else [], dtype=np.float64).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3 or not np.all(values > 0):
        raise RunFileError(
            f"{h5_path}: grid_spacing attribute {spacing!r} is not three positive numbers"
        )
    return (float(values[0]), float(values[1]), float(values[2]))


def _check_field_shape(
    h5_path: Path, name: str, shape: tuple[int, ...], grid_shape: tuple[int, int, int], n: int
) -> None:
    if len(shape) != 4 or shape[0] < n:
        raise RunFileError(
            f"{h5_path}: /fields/{name} has shape {shape}, expected ({n}, {', '.join(map(str, grid_shape))})"
        )
    if shape[1:] != grid_shape:
        raise RunFileError(f"{h5_path}: /fields/{name} grid {shape[1:]} differs from grid_shape {grid_shape}")


def _read_series(fh: Any, h5_path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``/timeseries/time`` and every other 1-D dataset of the same length under it."""
    group = fh.get("timeseries")
    if group is None:
        return np.zeros(0), {}
    if "time" not in group:
        raise RunFileError(f"{h5_path}: /timeseries has no time dataset")
    time = np.asarray(group["time"][...], dtype=np.float64).reshape(-1)
    series: dict[str, np.ndarray] = {}
    for name in group:
        if name == "time":
            continue
        ds = group[name]
        shape = getattr(ds, "shape", None)
        # a live run writes the time last: a series may be one record ahead
        values = np.asarray(ds[: time.size] if shape is not None and len(shape) == 1 else [], dtype=np.float64)
        if shape is None or len(shape) != 1 or values.size != time.size:
            log.warning(
                "%s: /timeseries/%s has shape %s, not (%d,); skipped",
                h5_path,
                name,
                shape,
                time.size,
            )
            continue
        series[name] = values
    return time, series


def _dose_times(raw: Any, h5_path: Path) -> dict[str, tuple[float, ...]]:
    """Parse ``dose_times_json`` (agent -> list of times); a malformed one is logged and dropped."""
    if raw is None or raw == "":
        return {}
    try:
        parsed = json.loads(raw)
        return {str(agent): tuple(float(t) for t in times) for agent, times in parsed.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        log.warning("%s: ignoring malformed dose_times_json (%s)", h5_path, exc)
        return {}
