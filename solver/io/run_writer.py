"""Writing the run file, DIR/run.h5 (its layout: solver/io/run_file.py).

Public API:
    RunWriter(path, grid, species, dtype, attrs, compression, maps, units, series)  context manager
        .write_snapshot(t, fields)          fields: host array (n_species, nx, ny, nz)
        .write_series(t, values)            values: {name: float}, names among `series`
        .flush() / .fsync()                 everything written so far, to the OS / on the disk
        .counts -> (n_series, n_snapshots)
        .abandon()                          after a failed write: never touch the disk again
    RunWriter.adopt(...)                    a writer for a file built by solver/io/run_resume.py
    attributes_digest(attrs) -> uint8[32]   the SHA-256 of the root attributes, stored as
                                            the dataset ATTRIBUTES_DIGEST
    LIBVER, as_os_error(exc, path)
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import time as wallclock
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from solver.errors import RunFileError
from solver.grid import Grid
from solver.io.safe_files import fsync_path
from solver.text import first_line

log = logging.getLogger(__name__)

# The v110 format at least (object headers, B-trees and the superblock checksummed; needed for
# SWMR), and no newer than v114: HDF5 2.0 writes layout messages that the HDF5 1.14 inside
# ParaView and VTK cannot decode ("bad version number for layout message").
LIBVER = ("v110", "v114")
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
            if self.units.get("time"):  # the time unit on both time axes, so exports can label them
                fields["time"].attrs["units"] = _attr(self.units["time"])
            group = file.create_group("maps")
            for name, array in (maps or {}).items():
                group.create_dataset(name, data=array, chunks=grid.shape, fletcher32=True, **comp)
            timeseries = file.create_group("timeseries", track_order=True)
            timeseries.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,),
                                      fletcher32=True)
            if self.units.get("time"):
                timeseries["time"].attrs["units"] = _attr(self.units["time"])
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
