"""Writing the run file, DIR/run.h5 (its layout: solver/io/run_file.py).

Public API:
    RunWriter(path, grid, species, dtype, attrs, compression, maps, units, series)  context manager
        .write_snapshot(t, fields)          fields: host array (n_species, nx, ny, nz), copied;
                                            written by the writer thread while the caller goes on
        .write_series(t, values)            values: {name: float}, names among `series`; buffered
        .flush() / .fsync()                 everything handed over so far, to the OS / on the disk
        .counts -> (n_series, n_snapshots)  handed over so far (all of them on disk after fsync())
        .abandon()                          after a failed write: never touch the disk again
    RunWriter.adopt(...)                    a writer for a file built by solver/io/run_resume.py
    attributes_digest(attrs) -> uint8[32]   the SHA-256 of the root attributes, stored as
                                            the dataset ATTRIBUTES_DIGEST
    LIBVER, as_os_error(exc, path)

Threading: once published, the file is touched by one thread only, the writer's
("tumorsim-run-writer"), which takes the tasks of the step loop in order from a queue.
h5py serialises its calls but not sequences of them (a resize, a write, a flush), so no
other thread may call into this file while that thread lives.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import queue
import re
import threading
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
_SERIES_BLOCK = 1024  # records appended with one resize at most (the series' chunk)
_SNAPSHOT_BUFFERS = 2  # host copies: one being written, one waiting; a third snapshot waits
_POLL_SECONDS = 0.5  # how often a waiting thread looks whether the other one still lives
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

    The writes happen off the step loop, in one writer thread: write_snapshot copies the
    fields into one of two host buffers and returns (it waits only while both are taken:
    the writer is more than one snapshot behind); write_series queues the record, and the
    writer appends records in blocks, one resize per block, published at least every
    _SERIES_FLUSH_SECONDS. flush(), fsync() and close() wait until everything handed over
    before them is written (a checkpoint that counts records calls fsync() first).

    A failed write (disk full) abandons the file: HDF5's descriptor is pointed at
    /dev/null so that closing it (now or at exit) cannot touch the disk or crash on the
    half-written state; what is on disk stays as it was at the last flush, which SWMR keeps
    readable, and nothing queued after the failure is written. The error is raised as an
    OSError naming the cause, in the caller's thread, by the next call (write_snapshot,
    write_series, flush, fsync or close); its `failed_at` attribute is the time of the
    record whose write failed (None when a flush failed).
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
            self._n_series, self._n_snapshots = 0, 0
        except BaseException as exc:
            self.abandon()
            temporary.unlink(missing_ok=True)
            if isinstance(exc, (OSError, RuntimeError)):
                raise as_os_error(exc, self.path) from None
            raise
        self._start_writer()

    def _adopt(self, file: Any, species: tuple[str, ...], units: dict[str, str] | None) -> None:
        self.file = file
        self.species = species
        self.units = units or {}  # dataset name -> unit, stored as its `units` attribute
        self.series: dict[str, Any] = {}
        self.abandoned = False
        self._series_flushed = wallclock.monotonic()
        self._tasks: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._free: queue.Queue[np.ndarray] = queue.Queue()  # snapshot buffers the writer is done with
        self._buffers = 0  # snapshot buffers allocated (at most _SNAPSHOT_BUFFERS)
        self._rows: list[tuple[float, np.ndarray]] = []  # records queued in the writer thread, not yet in HDF5
        self._failure: BaseException | None = None  # the writer thread's, raised once by the next call
        self._failure_raised = False
        self._thread: threading.Thread | None = None

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
            writer._n_series, writer._n_snapshots = file["timeseries/time"].shape[0], file["fields/time"].shape[0]
            writer._publish(temporary)
        except (OSError, RuntimeError) as exc:
            writer.abandon()
            temporary.unlink(missing_ok=True)
            raise as_os_error(exc, writer.path) from None
        writer._start_writer()
        return writer

    @property
    def counts(self) -> tuple[int, int]:
        """(time-series records, snapshots) handed to the writer so far; fsync() puts them
        all on the disk."""
        return self._n_series, self._n_snapshots

    # ----------------------------------------------------------------- the caller's side

    def _check(self) -> None:
        """Raise the writer thread's failure (once), or refuse a file already given up."""
        if self._failure is not None and not self._failure_raised:
            self._failure_raised = True
            raise self._failure
        if self.abandoned:
            raise OSError(errno.EIO, "the run file was abandoned after a failed write", str(self.path))

    def _writer_gone(self) -> OSError:
        self.abandon()
        return OSError(errno.EIO, "the run file's writer thread ended", str(self.path))

    def _wait(self, done: threading.Event) -> None:
        """Wait until the writer thread has done a task, then raise its failure if any."""
        while not done.wait(_POLL_SECONDS):
            if self._thread is None or not self._thread.is_alive():
                raise self._writer_gone()
        self._check()

    def _drain(self, fsync: bool) -> None:
        self._check()
        done = threading.Event()
        self._tasks.put(("sync", fsync, done))
        self._wait(done)

    def flush(self) -> None:
        """Hand everything written so far to the operating system (every record published),
        after the writer thread has written all that was handed to it."""
        self._drain(fsync=False)

    def fsync(self) -> None:
        """flush(), then the file's data on the disk (before a checkpoint that counts its records)."""
        self._drain(fsync=True)

    def write_snapshot(self, t: float, fields: np.ndarray) -> None:
        """Queue one snapshot; `fields` is copied before this returns (the caller may step on)."""
        self._check()
        buffer = self._snapshot_buffer(fields)
        np.copyto(buffer, fields)
        self._tasks.put(("snapshot", t, buffer))
        self._n_snapshots += 1

    def _snapshot_buffer(self, fields: np.ndarray) -> np.ndarray:
        """A host buffer the writer thread is not using: a new one while fewer than
        _SNAPSHOT_BUFFERS exist, else the next one it hands back (waiting for it)."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._buffers < _SNAPSHOT_BUFFERS:
            self._buffers += 1
            return np.empty(fields.shape, dtype=fields.dtype)
        waited = wallclock.perf_counter()
        while True:
            try:
                buffer = self._free.get(timeout=_POLL_SECONDS)
                break
            except queue.Empty:
                if self._thread is None or not self._thread.is_alive():
                    raise self._writer_gone() from None
        log.debug("waited %.3f s for the writer of %s (two snapshots behind)", wallclock.perf_counter() - waited,
                  self.path)
        self._check()  # a failure of the snapshot that held this buffer
        return buffer

    def write_series(self, t: float, values: dict[str, float]) -> None:
        """One record of every series declared at creation (a series missing from `values`
        is NaN in it), queued; appended in blocks, flushed for readers at most every second."""
        unknown = [name for name in values if name not in self.series]
        if unknown:
            raise RunFileError(f"{self.path}: time series {', '.join(unknown)} were not declared when the file "
                               "was created")
        self._check()
        row = np.array([values.get(name, np.nan) for name in self.series], dtype=np.float64)
        self._tasks.put(("series", t, row))
        self._n_series += 1

    def abandon(self) -> None:
        """Give up the file after a failed write: nothing queued is written any more (a write
        under way is waited for), HDF5's descriptor is pointed at /dev/null and the file
        closed, so nothing of HDF5's broken state reaches the disk or crashes at exit.
        Idempotent."""
        self.abandoned = True
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            self._tasks.put(("stop",))
            thread.join()
        self._release_file()

    def _release_file(self) -> None:
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
        """Write everything queued, then close the file (the run then writes the XDMF sidecar
        beside it: solver/io/xdmf.py)."""
        if self._failure is not None and not self._failure_raised:
            self._check()
        if self.abandoned or self._thread is None or not self._thread.is_alive():
            return
        done = threading.Event()
        self._tasks.put(("close", done))
        self._wait(done)
        self._thread.join()

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

    # ----------------------------------------------------------------- the writer thread

    def _start_writer(self) -> None:
        # Not a daemon: an interpreter that exits waits for a write under way instead of
        # closing HDF5 beneath it; the thread ends by itself once the main thread has ended.
        self._thread = threading.Thread(target=self._work, name="tumorsim-run-writer")
        self._thread.start()

    def _work(self) -> None:
        """Take the tasks in order until close or stop; a failure abandons the file, and the
        tasks after it are only acknowledged (buffers handed back, waiters woken)."""
        while True:
            try:
                task = self._tasks.get(timeout=self._idle_timeout())
            except queue.Empty:
                if self._rows and self._series_due():
                    self._perform(self._flush_all, self._rows[0][0])
                if not threading.main_thread().is_alive() and self._tasks.empty():
                    self._perform(self._flush_all)  # nobody left to close the file: h5py closes it at exit
                    return
                continue
            kind = task[0]
            if kind == "snapshot":
                _, t, buffer = task
                if self._rows:  # the records before it go first (the snapshot's flush publishes them)
                    self._perform(self._append_rows, self._rows[0][0])
                self._perform(lambda: self._write_snapshot_now(t, buffer), t)
                self._free.put(buffer)
            elif kind == "series":
                _, t, row = task
                if not self.abandoned:
                    self._rows.append((t, row))
                    if len(self._rows) >= _SERIES_BLOCK or self._series_due():
                        self._perform(self._flush_all, self._rows[0][0])
            elif kind == "sync":
                _, fsync, done = task
                self._perform(lambda: self._flush_all(fsync))
                done.set()
            elif kind == "close":
                self._perform(lambda: (self._flush_all(False), self.file.close()))
                task[1].set()
                return
            else:  # stop: abandon() waits for this
                return

    def _idle_timeout(self) -> float:
        if not self._rows:
            return _POLL_SECONDS
        return min(_POLL_SECONDS, max(0.0, self._series_flushed + _SERIES_FLUSH_SECONDS - wallclock.monotonic()))

    def _series_due(self) -> bool:
        return wallclock.monotonic() - self._series_flushed >= _SERIES_FLUSH_SECONDS

    def _perform(self, action: Any, t: float | None = None) -> None:
        """Run a write in the writer thread; a failure is kept for the caller's thread, and
        the file abandoned there and then (no later task touches it)."""
        if self.abandoned:
            return
        try:
            action()
        except Exception as exc:  # noqa: BLE001 -- every failure reaches the caller's thread
            failure = as_os_error(exc, self.path) if isinstance(exc, (OSError, RuntimeError)) else exc
            failure.failed_at = t  # type: ignore[attr-defined]
            self._failure = failure
            self.abandoned = True
            self._rows.clear()
            self._release_file()

    def _flush_all(self, fsync: bool = False) -> None:
        if self._rows:
            self._append_rows()
        for ds in self.series.values():
            ds.flush()
        self.file["timeseries/time"].flush()
        self.file.flush()
        self._series_flushed = wallclock.monotonic()
        if fsync:
            os.fsync(self.file.id.get_vfd_handle())

    def _write_snapshot_now(self, t: float, fields: np.ndarray) -> None:
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

    def _append_rows(self) -> None:
        """The queued records as one block: one resize per series, the time last (its
        flush publishes them)."""
        rows, self._rows = self._rows, []
        group = self.file["timeseries"]
        n, k = group["time"].shape[0], len(rows)
        block = np.stack([row for _, row in rows])
        for j, ds in enumerate(self.series.values()):
            ds.resize((n + k,))
            ds[n:] = block[:, j]
        group["time"].resize((n + k,))
        group["time"][n:] = [t for t, _ in rows]
