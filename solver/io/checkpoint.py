"""Checkpoints: the whole state of a run in one HDF5 file, written atomically.

Public API:
    Checkpoint                          what a checkpoint holds (host copies)
    write_checkpoint(folder, checkpoint, keep) -> Path
    write_final_checkpoint(folder, checkpoint) -> Path   final-<step>.h5: the state at the end time
    final_checkpoint(folder) -> Path | None
    read_checkpoint(path) -> Checkpoint
    find_checkpoint(folder, which) -> Path      "latest" or a path (or a file name in folder)
    list_checkpoints(folder) -> list[Path]      oldest first (by step)
    remove_checkpoints(folder, after_step=None) -> list[Path]
    remove_partial_writes(folder) -> list[Path]
    physics_config(resolved) -> dict            the keys of a resolved config that set the answer
    config_hash(physics) -> str
    run_hash(physics, maps_sha256) -> str       a run's identity: physics without the step size, maps
    config_differences(old, new) -> list[str]   "key (checkpoint: a, config: b)"
    only_step_size(differences) -> bool         all of them time.dt, time.safety or dt
    array_sha256(array) -> str
    CHECKPOINT_DIR                              "checkpoints", inside the run folder

A checkpoint holds everything that evolves: the fields of every species (copied
from the device), t and the step count, an interval in progress (a run stopped by
a signal mid-way between two events resumes with the same sub-steps), the
systemic state (SystemicRuntime.get_state), the diagnostics' AUC accumulators and
last record, the position in the run's event list and how many time-series
records and snapshots run.h5 held, the physics-relevant resolved config (with the
dt it gives) and its hash, a hash of the static maps, the solver version, backend
and device. Nothing
else is random: generated vessel maps come from their seed, and the hash of the
maps catches a map file that changed.

Layout of DIR/checkpoints/checkpoint-<step, 12 digits>.h5 (HDF5, newest format):
    user block (512 bytes)  "tumorsim-checkpoint sha256 <hex>": the SHA-256 of every byte
                            after the user block, so of every dataset, attribute and
                            piece of HDF5 metadata (HDF5 itself ignores a user block)
    /fields                 (n_species, nx, ny, nz), the run's dtype, fletcher32 checksum
    /systemic/y             systemic ODE values (float64)
    /systemic/pk/<agent>    plasma PK compartments (float64)
    /diagnostics/auc        AUC accumulators; attribute `names` (JSON)
    /diagnostics/last       the last record's diagnostics; attributes `names`, `t`
    root attributes         format, format_version, tumorsim_version, t, step,
                            segment (t0, t_end, n, k; absent when on an event),
                            dt_next (the step-size control's next step, when controlled),
                            guard_peak (per species, the largest |value| the guard saw),
                            next_event, n_series, n_snapshots, species (JSON),
                            physics_json, config_hash, maps_sha256, backend,
                            device, reason, written_at, run_hash (that of the run.h5
                            this checkpoint continues: solver/io/run_file.py)
    every non-empty dataset has a fletcher32 checksum too

Atomic write: the whole file is built in memory (HDF5's core driver: HDF5 never writes
to the disk, so a full disk cannot leave HDF5 in a broken state), digested, and written
as a new hidden temporary in the same folder (O_EXCL | O_NOFOLLOW: never through a
link), fsynced, renamed over the final name with os.replace, and the folder is fsynced.
A crash or SIGKILL at any moment leaves either the old set of checkpoints or the new one,
never a half-written checkpoint under a checkpoint's name; a disk-full error removes the
temporary and leaves the earlier checkpoints as they were. Reading checks the digest
before anything of the file is used: a flipped bit anywhere is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import time as wallclock
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from solver.errors import CheckpointError, SimulationError
from solver.hdf5_safety import outside_references
from solver.io.safe_files import fsync_path
from solver.text import first_line

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
FORMAT = "tumorsim-checkpoint"
FORMAT_VERSION = 2  # 2: the whole file under a SHA-256 digest, and run_hash
_USERBLOCK = 512
_DIGEST_MAGIC = b"tumorsim-checkpoint sha256 "
# Keys that set the step size only: a resume may change them (after a blow-up, with a
# lower dt or safety factor); the continuation is then not bit-identical, and says so.
STEP_SIZE_KEYS = ("dt", "time.dt", "time.safety")
_NAME_RE = re.compile(r"^checkpoint-(\d{12})\.h5$")
_PARTIAL_RE = re.compile(r"^\.(checkpoint|final)-\d{12}\.h5\.\d+\.tmp$")
# final-<step>.h5: the state at the run's end time, written when the run ends, beside the
# numbered checkpoints but not among them (their `keep` is about the run's progress);
# "latest" is the highest step of either, and --extend-to continues it.
_FINAL_RE = re.compile(r"^final-(\d{12})\.h5$")
# Output keys that change neither the steps taken nor the values computed.
_OUTPUT_KEYS_WITHOUT_EFFECT = ("dir", "check_every", "compression", "pictures", "checkpoint")


@dataclass
class Checkpoint:
    """The whole state of a run at one instant (host copies), and where it came from."""

    t: float
    step: int
    fields: np.ndarray  # (n_species, nx, ny, nz), the run's dtype
    species: tuple[str, ...]
    systemic: dict[str, Any]  # SystemicRuntime.get_state()
    diagnostics: dict[str, Any]  # DiagnosticsEvaluator.get_state()
    next_event: int  # index of the first series/snapshot record not yet written
    n_series: int  # records in run.h5 /timeseries when the checkpoint was written
    n_snapshots: int  # snapshots in run.h5 /fields
    physics: dict[str, Any]  # physics_config() of the resolved config
    maps_sha256: str
    backend: str
    device: str
    segment: tuple[float, float, int, int] | None = None  # (t0, t_end, n, k) in progress
    dt_next: float | None = None  # the step-size control's next step (None: not controlled)
    guard_peak: np.ndarray | None = None  # per species, the largest |value| the blow-up guard saw
    reason: str = "periodic"
    tumorsim_version: str = ""
    config_hash: str = ""
    run_hash: str = ""  # run_hash(physics, maps_sha256): the run (its run.h5) this continues
    path: Path | None = field(default=None, compare=False)


def physics_config(resolved: dict[str, Any]) -> dict[str, Any]:
    """The resolved config without the keys that do not change the answer.

    Dropped: the run's name, the backend (the same physics on another device; the
    bits may differ, and resuming warns), and the output keys that neither move the
    steps nor change a value (folder, check interval, compression, pictures,
    checkpoints). Kept: everything else, including output.snapshot_every and
    output.series_every, because the steps land on every record.
    """
    out = {k: v for k, v in resolved.items() if k not in ("name", "backend")}
    output = out.get("output")
    if isinstance(output, dict):
        out["output"] = {k: v for k, v in output.items() if k not in _OUTPUT_KEYS_WITHOUT_EFFECT}
    return out


def config_hash(physics: dict[str, Any]) -> str:
    """SHA-256 of the physics-relevant config as canonical JSON (sorted keys)."""
    text = json.dumps(physics, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_hash(physics: dict[str, Any], maps_sha256: str) -> str:
    """The identity of a run, stored in its run.h5 and its checkpoints: the hash of its
    physics without the step-size keys (kept through a resume with a lower dt) and of its
    static maps. Two runs of one config and maps compute the same records (bit for bit on
    one backend), so they may share it; a run of other physics (patient 10 instead of 9)
    or other maps may not."""
    out = json.loads(json.dumps(physics))
    out.pop("dt", None)
    if isinstance(out.get("time"), dict):
        out["time"] = {k: v for k, v in out["time"].items() if k not in ("dt", "safety")}
    out["maps_sha256"] = maps_sha256
    return config_hash(out)


def only_step_size(differences: list[str]) -> bool:
    """Whether every difference (config_differences) is one of STEP_SIZE_KEYS."""
    return all(d.split(" (", 1)[0] in STEP_SIZE_KEYS for d in differences)


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (C order)."""
    a = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    digest.update(a.tobytes())
    return digest.hexdigest()


_ABSENT = object()


def _shown(value: Any) -> str:
    text = "(absent)" if value is _ABSENT else json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, each as "key (checkpoint: a, config: b)".

    Mappings on both sides are compared key by key; anything else is compared whole.
    """
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, name)
        elif a != b:
            out.append(f"{name} (checkpoint: {_shown(a)}, config: {_shown(b)})")
    return out


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step:012d}.h5"


def list_checkpoints(folder: str | Path) -> list[Path]:
    """The checkpoint files in `folder`, oldest (lowest step) first; temporaries excluded."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def find_checkpoint(folder: str | Path, which: str | Path) -> Path:
    """The checkpoint to resume from: "latest" (highest step in `folder`, the end state
    final-<step>.h5 included) or a path.

    A path that does not exist as given is also looked up by name inside `folder`.

    Raises:
        CheckpointError: no checkpoint in the folder, or the file does not exist.
    """
    folder = Path(folder)
    if str(which) == "latest":
        found = sorted([*list_checkpoints(folder), *_finals(folder)], key=_step_of)
        if not found:
            raise CheckpointError(
                f"--resume latest: no checkpoint in {str(folder)!r}; a run writes them as "
                "output.checkpoint says, and when stopped by SIGINT or SIGTERM"
            )
        return found[-1]
    path = Path(which).expanduser()
    if path.is_file():
        return path
    if not path.is_absolute() and (folder / path.name).is_file() and path.parent == Path("."):
        return folder / path.name
    where = "" if path.exists() else " not found"
    kind = " is a folder, not a checkpoint file" if path.is_dir() else where
    raise CheckpointError(f"--resume: {str(path)!r}{kind}; give a checkpoint file or 'latest'")


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete temporaries left by a checkpoint write that was killed; return them."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.iterdir():
            if _PARTIAL_RE.match(p.name):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def remove_checkpoints(folder: str | Path, after_step: int | None = None) -> list[Path]:
    """Delete the checkpoints in `folder` (only those after `after_step`, when given) and
    the end state final-<step>.h5 in any case: a resumed or new run is no longer there."""
    removed = []
    for final in _finals(Path(folder)):
        final.unlink(missing_ok=True)
    for p in list_checkpoints(folder):
        step = int(_NAME_RE.match(p.name).group(1))  # type: ignore[union-attr]
        if after_step is None or step > after_step:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _fsync_path(path: Path, directory: bool = False) -> None:
    fsync_path(path, directory)


def _write_contents(path: Path, ck: Checkpoint) -> None:
    """Write the checkpoint's file at `path`, a new file (O_EXCL, O_NOFOLLOW; not atomic by
    itself): the HDF5 image built in memory, under its digest."""
    data = _image(ck)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _digest_block(body: bytes) -> bytes:
    """The user block that states the SHA-256 of everything after it."""
    text = _DIGEST_MAGIC + hashlib.sha256(body).hexdigest().encode("ascii") + b"\n"
    return text + b"\0" * (_USERBLOCK - len(text))


def _checksummed(group: Any, name: str, data: np.ndarray, **options: Any) -> Any:
    """A dataset with a fletcher32 checksum (HDF5 allows one only on chunked, non-empty data)."""
    data = np.asarray(data)
    if data.size == 0:
        return group.create_dataset(name, data=data)
    options.setdefault("chunks", True)
    return group.create_dataset(name, data=data, fletcher32=True, **options)


def _image(ck: Checkpoint) -> bytes:
    """The checkpoint as the bytes of one HDF5 file, built in memory, digest included."""
    import h5py

    f = h5py.File(f"checkpoint-{ck.step}-{id(ck)}", "w", driver="core", backing_store=False, libver="latest",
                  userblock_size=_USERBLOCK)
    with f:
        attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tumorsim_version": ck.tumorsim_version,
            "t": np.float64(ck.t),
            "step": np.int64(ck.step),
            "next_event": np.int64(ck.next_event),
            "n_series": np.int64(ck.n_series),
            "n_snapshots": np.int64(ck.n_snapshots),
            "species": json.dumps(list(ck.species)),
            "physics_json": json.dumps(ck.physics, sort_keys=True),
            "config_hash": ck.config_hash or config_hash(ck.physics),
            "maps_sha256": ck.maps_sha256,
            "backend": ck.backend,
            "device": ck.device,
            "reason": ck.reason,
            "written_at": wallclock.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "run_hash": ck.run_hash,
        }
        if ck.segment is not None:
            t0, t1, n, k = ck.segment
            attrs["segment"] = np.array([t0, t1, n, k], dtype=np.float64)  # n, k exact in float64
        if ck.dt_next is not None:
            attrs["dt_next"] = float(ck.dt_next)
        if ck.guard_peak is not None:
            attrs["guard_peak"] = np.asarray(ck.guard_peak, dtype=np.float64)
        for key, value in attrs.items():
            f.attrs[key] = value
        chunks = _chunks(ck.fields)
        _checksummed(f, "fields", ck.fields, chunks=chunks)
        systemic = f.create_group("systemic")
        _checksummed(systemic, "y", np.asarray(ck.systemic["y"], dtype=np.float64))
        pk = systemic.create_group("pk", track_order=True)
        for agent, state in ck.systemic["pk"].items():
            _checksummed(pk, agent, np.asarray(state, dtype=np.float64))
        diag = f.create_group("diagnostics")
        auc = ck.diagnostics.get("auc", {})
        ds = _checksummed(diag, "auc", np.array(list(auc.values()), dtype=np.float64))
        ds.attrs["names"] = json.dumps(list(auc))
        last = ck.diagnostics.get("last")
        values = last[1] if last is not None else {}
        ds = _checksummed(diag, "last", np.array(list(values.values()), dtype=np.float64))
        ds.attrs["names"] = json.dumps(list(values))
        ds.attrs["t"] = np.float64(last[0]) if last is not None else np.float64(np.nan)
        f.flush()
        body = f.id.get_file_image()  # the file after its user block
    return _digest_block(body) + body


def _chunks(fields: np.ndarray) -> tuple[int, ...] | None:
    """Chunks of one species and at most 64 MiB (HDF5 allows up to 4 GiB per chunk)."""
    if fields.ndim != 4 or not fields.size:
        return None
    plane = fields.shape[2] * fields.shape[3] * fields.itemsize
    return (1, max(1, min(fields.shape[1], (64 << 20) // plane)), *fields.shape[2:])


def write_checkpoint(folder: str | Path, checkpoint: Checkpoint, keep: int) -> Path:
    """Write `checkpoint` atomically into `folder`; keep the newest `keep`; return its path.

    Raises:
        SimulationError: the folder cannot be created or written (permission, disk
            full); the temporary is removed and earlier checkpoints are untouched.
    """
    folder = Path(folder)
    final = _write_as(folder / checkpoint_name(checkpoint.step), checkpoint)
    for old in list_checkpoints(folder)[:-keep]:
        if old != final:
            old.unlink(missing_ok=True)
    log.info("checkpoint at t = %.6g (step %d): %s", checkpoint.t, checkpoint.step, final)
    return final


def write_final_checkpoint(folder: str | Path, checkpoint: Checkpoint) -> Path:
    """Write the state at the run's end time as `folder`/final-<step>.h5 (atomically, outside the
    numbered checkpoints and their `keep`), for `--extend-to`; return its path.

    Raises:
        SimulationError: as write_checkpoint.
    """
    folder = Path(folder)
    earlier = _finals(folder)
    final = _write_as(folder / f"final-{checkpoint.step:012d}.h5", checkpoint)
    for old in earlier:  # one end state: this run's
        if old != final:
            old.unlink(missing_ok=True)
    log.info("final state at t = %.6g (step %d): %s", checkpoint.t, checkpoint.step, final)
    return final


def final_checkpoint(folder: str | Path) -> Path | None:
    """`folder`/final-<step>.h5 when the run wrote one at its end time, else None."""
    found = _finals(Path(folder))
    return found[-1] if found else None


def _finals(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _FINAL_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def _step_of(path: Path) -> int:
    match = _NAME_RE.match(path.name) or _FINAL_RE.match(path.name)
    return int(match.group(1)) if match else -1


def _write_as(final: Path, checkpoint: Checkpoint) -> Path:
    folder = final.parent
    temporary = folder / f".{final.name}.{os.getpid()}.tmp"
    previous = list_checkpoints(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_contents(temporary, checkpoint)
        _fsync_path(temporary)
        os.replace(temporary, final)
        _fsync_path(folder, directory=True)
    except BaseException as exc:  # also a second Ctrl-C mid-write: never leave a temporary
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, (OSError, RuntimeError)):
            kept = f"; the previous checkpoint {str(previous[-1])!r} is intact" if previous else ""
            reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
            raise SimulationError(
                f"cannot write checkpoint {str(final)!r}: {reason}{kept}"
            ) from None
        raise
    checkpoint.path = final
    return final


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint file (format, version, checksums of the fields).

    Raises:
        CheckpointError: not a readable HDF5 file (truncated, corrupt), not a tumorsim
            checkpoint, written by a newer format, or incomplete.
    """
    import h5py

    path = Path(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {exc.strerror or exc}") from None
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except (OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r}: not a readable HDF5 file "
            f"(truncated or corrupt?): {first_line(exc)}"
        ) from None
    with f:
        try:
            kind, version = f.attrs.get("format"), int(f.attrs.get("format_version", -1))
        except (KeyError, OSError, RuntimeError, ValueError, TypeError):  # its metadata is damaged
            kind, version = None, -1
        sealed = data.startswith(_DIGEST_MAGIC)  # a format-2 file, whatever else happened to it
        if kind != FORMAT and not sealed:
            raise CheckpointError(
                f"{str(path)!r} is not a tumorsim checkpoint (no format={FORMAT!r} attribute)"
            )
        if kind == FORMAT and version != FORMAT_VERSION:
            older = " (no checksum over its whole state; finish that run with the tumorsim that wrote it, " \
                "or start it again)" if 0 <= version < FORMAT_VERSION else ""
            raise CheckpointError(
                f"checkpoint {str(path)!r} has format version {version}{older}; this tumorsim "
                f"reads version {FORMAT_VERSION}"
            )
        if data[:_USERBLOCK] != _digest_block(data[_USERBLOCK:]):
            raise CheckpointError(
                f"checkpoint {str(path)!r} is damaged or incomplete: its bytes do not match the SHA-256 it was "
                "written with; resume from another checkpoint"
            )
        outside = outside_references(f)
        if outside is not None:
            raise CheckpointError(f"checkpoint {str(path)!r} reaches outside itself ({outside}); not a tumorsim "
                                  "checkpoint")
        try:
            return _read_contents(f, path)
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {str(path)!r} is damaged or incomplete: {first_line(exc)}"
            ) from None


def _read_contents(f: Any, path: Path) -> Checkpoint:
    a = f.attrs
    fields = f["fields"][()]  # the fletcher32 filter raises OSError on a corrupted chunk
    species = tuple(json.loads(a["species"]))
    if fields.ndim != 4 or fields.shape[0] != len(species):
        raise ValueError(f"fields have shape {fields.shape} for {len(species)} species")
    pk = {name: ds[()] for name, ds in f["systemic/pk"].items()}
    auc_ds, last_ds = f["diagnostics/auc"], f["diagnostics/last"]
    auc = dict(zip(json.loads(auc_ds.attrs["names"]), (float(v) for v in auc_ds[()])))
    last_t = float(last_ds.attrs["t"])
    last_values = dict(zip(json.loads(last_ds.attrs["names"]), (float(v) for v in last_ds[()])))
    segment = None
    if "segment" in a:
        t0, t1, n, k = (float(v) for v in a["segment"])
        segment = (t0, t1, int(n), int(k))
    physics = json.loads(a["physics_json"])
    return Checkpoint(
        t=float(a["t"]),
        step=int(a["step"]),
        fields=fields,
        species=species,
        systemic={"y": f["systemic/y"][()], "pk": pk},
        diagnostics={"auc": auc, "last": None if math.isnan(last_t) else (last_t, last_values)},
        next_event=int(a["next_event"]),
        n_series=int(a["n_series"]),
        n_snapshots=int(a["n_snapshots"]),
        physics=physics,
        maps_sha256=str(a["maps_sha256"]),
        backend=str(a["backend"]),
        device=str(a["device"]),
        segment=segment,
        dt_next=float(a["dt_next"]) if "dt_next" in a else None,
        guard_peak=np.asarray(a["guard_peak"], dtype=np.float64) if "guard_peak" in a else None,
        reason=str(a.get("reason", "")),
        tumorsim_version=str(a["tumorsim_version"]),
        config_hash=str(a["config_hash"]),
        run_hash=str(a["run_hash"]),
        path=path,
    )
