"""Continuing a run's file from a checkpoint: checked, read back whole, rewritten beside it.

Public API:
    resume_run_file(path, species, series, n_series, n_snapshots, t, note, units, run_hash)
        -> RunWriter   run.h5 as the checkpoint left it, ready to append to

A checkpoint taken at time t counts the records run.h5 held then (n_series time-series
records, n_snapshots snapshots). Resuming keeps exactly those and drops any written after
the checkpoint, so the continued file has no gap and no duplicate. The old file is never
modified: it is opened read-only (as an SWMR reader when a run killed in SWMR mode left
it marked open for writing), checked, and copied record by record into a new file beside
it, which is renamed over it when complete. So a refused or failed resume leaves run.h5
as it was, the file of a run that was SIGKILLed in SWMR mode (which HDF5 will not reopen
for writing) continues, and every record kept is read back through its checksum.

Refused (RunFileError, nothing changed): a missing file or a link, a file held by an HDF5
lock of another process, one that reaches outside itself, one of another run (its
run_hash, of the physics and maps, must be the checkpoint's: a run.h5 of patient 10 beside
checkpoints of patient 9 is not continued), one with fewer records or series than the checkpoint counts
or records after t among them, and one whose records fail their checksums.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from solver.errors import RunFileError
from solver.hdf5_safety import outside_references
from solver.io.run_writer import (
    ATTRIBUTES_DIGEST,
    LIBVER,
    RunWriter,
    _attr,
    as_os_error,
    attributes_digest,
)
from solver.text import first_line, format_bytes

log = logging.getLogger(__name__)


# What h5py raises reading a damaged file: OSError for a failed checksum or filter, the
# others for metadata that decodes to nonsense (SystemError from its Cython lock when a
# damaged object header breaks a call midway).
READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError)

def resume_run_file(
    path: Path,
    species: tuple[str, ...],
    series: tuple[str, ...],
    n_series: int,
    n_snapshots: int,
    t: float,
    note: dict[str, Any],
    units: dict[str, str],
    run_hash: str,
    replaced: dict[str, Any] | None = None,
) -> RunWriter:
    """run.h5 of the checkpointed run, cut to the checkpoint's records, open for appending.

    `note` is appended to the JSON list in the `resumed_json` attribute. `replaced`: root
    attributes given new values (a run extended to a later end: its config_json and
    run_hash), the attributes' digest computed again over them.

    Raises:
        RunFileError: see the module docstring; the old file is left as it was.
    """
    import h5py

    path = Path(path)
    quoted = repr(str(path))
    if path.is_symlink():
        raise RunFileError(f"cannot resume: {quoted} is a symbolic link; tumorsim does not write through links")
    if not path.is_file():
        raise RunFileError(f"cannot resume: {quoted} is missing (the checkpoint continues that file)")
    try:
        old = _open_read_only(path)
    except OSError as exc:
        if exc.errno == errno.EAGAIN or "unable to lock file" in str(exc):
            raise RunFileError(f"cannot resume: {quoted} is open in another process that holds an HDF5 lock on it "
                               "(h5py in write mode?); close it there and resume again") from None
        raise RunFileError(f"cannot resume: {quoted} cannot be opened (damaged, or not HDF5?): "
                           f"{first_line(exc)}") from None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with old:
        try:
            _check_resumable(old, path, species, series, n_series, n_snapshots, t, run_hash)
        except READ_ERRORS as exc:
            raise _damaged(path, exc) from None
        free, needed = shutil.disk_usage(path.parent).free, path.stat().st_size
        if free < needed:
            raise RunFileError(f"cannot resume: rewriting {quoted} needs up to {format_bytes(needed)} beside it; "
                               f"{format_bytes(free)} free")
        temporary.unlink(missing_ok=True)
        try:
            new = h5py.File(temporary, "x", libver=LIBVER)
        except OSError as exc:
            raise RunFileError(f"cannot resume: cannot create {str(temporary)!r}: {as_os_error(exc, temporary).strerror}")\
                from None
        try:
            _copy(old, new, n_series, n_snapshots, note, path, replaced or {})
            new.flush()
        except BaseException:
            _drop(new)
            temporary.unlink(missing_ok=True)
            raise
    try:
        return RunWriter.adopt(new, path, species, units, temporary)
    except OSError as exc:
        raise RunFileError(f"cannot resume: publishing the rewritten {quoted} failed: {exc.strerror}") from None


def check_finished_run_file(
    path: Path, species: tuple[str, ...], series: tuple[str, ...], n_series: int, n_snapshots: int,
    t: float, run_hash: str,
) -> None:
    """The checks of a resume on run.h5 of a finished run, and every dataset read through
    (its chunk checksums): `--resume` of a finished run says "nothing to do" only when
    there is nothing wrong with what it would leave as it is.

    Raises:
        RunFileError: as resume_run_file; the file is left as it was.
    """
    path = Path(path)
    quoted = repr(str(path))
    if path.is_symlink() or not path.is_file():
        raise RunFileError(f"cannot resume: {quoted} is missing or a symbolic link")
    try:
        old = _open_read_only(path)
    except OSError as exc:
        raise RunFileError(f"cannot resume: {quoted} cannot be opened (damaged, or not HDF5?): "
                           f"{first_line(exc)}") from None
    with old:
        try:
            _check_resumable(old, path, species, series, n_series, n_snapshots, t, run_hash)
            datasets: list[Any] = []
            old.visititems(lambda _, obj: datasets.append(obj) if hasattr(obj, "shape") else None)
            for dataset in datasets:
                dataset[()]
        except READ_ERRORS as exc:
            raise _damaged(path, exc) from None


def _open_read_only(path: Path) -> Any:
    """The old run file, read-only: as a plain reader (which fails fast on a damaged
    checksum), or as an SWMR reader when a run killed in SWMR mode left the file marked
    open for writing (an SWMR reader retries a failed checksum for a long time, since a
    live writer may be mid-write)."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise
    return h5py.File(path, "r", swmr=True)


def _damaged(path: Path, exc: BaseException) -> RunFileError:
    return RunFileError(
        f"cannot resume: {str(path)!r} is damaged ({first_line(exc)}); the checkpoints are intact, but the "
        "records run.h5 held cannot be continued without a gap: start the run again (--overwrite)"
    )


def _check_resumable(
    file: Any, path: Path, species: tuple[str, ...], series: tuple[str, ...], n_series: int, n_snapshots: int,
    t: float, run_hash: str,
) -> None:
    quoted = repr(str(path))
    outside = outside_references(file)
    if outside is not None:
        raise RunFileError(f"cannot resume: {quoted} reaches outside itself ({outside}); not a tumorsim run file")
    if ATTRIBUTES_DIGEST not in file or not np.array_equal(file[ATTRIBUTES_DIGEST][()],
                                                             attributes_digest(dict(file.attrs))):
        raise RunFileError(f"cannot resume: {quoted} is damaged (its attributes do not match their SHA-256) or was "
                           "not written by this version of tumorsim; start the run again (--overwrite)")
    if "run_hash" not in file.attrs:
        raise RunFileError(f"cannot resume: {quoted} has no run_hash (not written by this version of tumorsim); "
                           "start the run again")
    if _text(file.attrs["run_hash"]) != run_hash:
        raise RunFileError(f"cannot resume: {quoted} belongs to another run (its physics or maps differ from the "
                           "checkpoint's): was it replaced? Put back this run's run.h5, or start the run again")
    try:
        series_t = file["timeseries/time"][()]
        snap_t = file["fields/time"][()]
        missing = [s for s in species if s not in file["fields"]]
    except KeyError as exc:
        raise RunFileError(f"cannot resume: {quoted} is not laid out as a tumorsim run: {first_line(exc)}") from None
    if missing:
        raise RunFileError(f"cannot resume: {quoted} has no snapshots of species {', '.join(missing)}")
    for what, times, n in (("time-series records", series_t, n_series), ("snapshots", snap_t, n_snapshots)):
        if len(times) < n or np.any(times[:n] > t):
            raise RunFileError(
                f"cannot resume: {quoted} holds {len(times)} {what}, not the {n} up to t = {t:g} "
                "that the checkpoint was written after (was the file replaced or cut short?)"
            )
    short = [name for name in (*species, "time") if file["fields"][name].shape[0] < n_snapshots]
    short += [name for name in (*series, "time") if name not in file["timeseries"]
              or file["timeseries"][name].shape[0] < n_series]
    if short:
        raise RunFileError(f"cannot resume: {quoted} lacks records of {', '.join(short[:5])} that the checkpoint "
                           f"counts ({n_series} time-series records, {n_snapshots} snapshots)")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _copy(old: Any, new: Any, n_series: int, n_snapshots: int, note: dict[str, Any], path: Path,
          replaced: dict[str, Any]) -> None:
    """Every attribute, map and record up to the checkpoint's counts, from old into new.

    Snapshot chunks are read decoded (their checksums verified) and copied as stored bytes.
    Raises RunFileError for an old record that cannot be read, OSError-like errors of the
    new file as RunFileError naming the cause (a full disk).
    """
    import h5py

    def read(action: Any) -> Any:
        try:
            return action()
        except READ_ERRORS as exc:
            raise _damaged(path, exc) from None

    def write(action: Any) -> Any:
        try:
            return action()
        except (OSError, RuntimeError) as exc:
            raise RunFileError(f"cannot resume: writing the continued {str(path)!r} failed: "
                               f"{as_os_error(exc, path).strerror}") from None

    attrs = read(lambda: {key: old.attrs[key] for key in old.attrs})
    notes = json.loads(_text(attrs.get("resumed_json", "[]")))
    attrs["resumed_json"] = json.dumps([*notes, note])
    write(lambda: [new.attrs.__setitem__(key, _attr(_text(v) if isinstance(v, (bytes, str)) else v))
                   for key, v in attrs.items()])
    digest = read(lambda: old[ATTRIBUTES_DIGEST][()])
    if replaced:
        write(lambda: [new.attrs.__setitem__(key, _attr(v)) for key, v in replaced.items()])
        digest = attributes_digest(dict(new.attrs))
    write(lambda: new.create_dataset(ATTRIBUTES_DIGEST, data=digest, chunks=(32,), fletcher32=True))
    for group_name, n in (("fields", n_snapshots), ("maps", None), ("timeseries", n_series)):
        source = read(lambda g=group_name: old[g])
        target = write(lambda g=group_name: new.create_group(g, track_order=True))
        for name in read(lambda s=source: list(s)):
            ds = read(lambda s=source, nm=name: s[nm])
            if not isinstance(ds, h5py.Dataset):
                continue
            rows = ds.shape[0] if n is None else n
            shape = (rows, *ds.shape[1:]) if ds.shape else ds.shape
            options = {"chunks": ds.chunks, "compression": ds.compression, "compression_opts": ds.compression_opts,
                       "shuffle": ds.shuffle, "fletcher32": ds.fletcher32, "maxshape": ds.maxshape}
            copy = write(lambda t=target, nm=name, o=options, sh=shape, d=ds: t.create_dataset(
                nm, shape=sh, dtype=d.dtype, **{k: v for k, v in o.items() if v is not None}))
            for key in read(lambda d=ds: list(d.attrs)):
                value = read(lambda d=ds, k=key: d.attrs[k])
                write(lambda c=copy, k=key, v=value: c.attrs.__setitem__(k, _attr(_text(v) if isinstance(
                    v, (bytes, str)) else v)))
            if ds.ndim == 4 and ds.chunks == (1, *ds.shape[1:]):
                for i in range(rows):  # one chunk per snapshot: verified, then copied as stored
                    read(lambda d=ds, k=i: d[k])
                    mask, raw = read(lambda d=ds, k=i: d.id.read_direct_chunk((k, 0, 0, 0)))
                    write(lambda c=copy, k=i, m=mask, r=raw: c.id.write_direct_chunk((k, 0, 0, 0), r, m))
            elif rows:
                values = read(lambda d=ds, r=rows: d[:r] if d.shape else d[()])
                write(lambda c=copy, v=values: c.__setitem__(..., v))


def _drop(file: Any) -> None:
    """Close a file being written after a failure, without letting HDF5 touch the disk."""
    try:
        if file.id.valid:
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, file.id.get_vfd_handle())
            finally:
                os.close(null)
            file.close()
    except (OSError, RuntimeError, ValueError) as exc:  # the temporary is removed next
        log.debug("closing an abandoned run file: %s", first_line(exc))  # (a closed File has no name)
