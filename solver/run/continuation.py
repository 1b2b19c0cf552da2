"""Continuing a run from its checkpoints: which checkpoint, whether it may be continued by
this config (the same physics; or, extending, a later time.end with the same records up to
the old one), and whether the run is already finished.

Public API (Simulation's methods of the same names call these; `sim` is that Simulation,
not imported here, so that the two modules do not import each other):
    load_checkpoint(sim, folder, which, backend, extend=False) -> Checkpoint
    check_extension(sim, checkpoint, path)       refuses an extension that is not bit-identical
    finished_at(sim, which="latest", extend=False) -> float | None
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from solver import __version__
from solver.backends.base import Backend
from solver.backends.registry import get_backend
from solver.diagnostics import DiagnosticsEvaluator
from solver.errors import CheckpointError, TumorsimError
from solver.integrators.systemic import SystemicRuntime
from solver.io.checkpoint import (
    CHECKPOINT_DIR,
    Checkpoint,
    array_sha256,
    config_differences,
    final_checkpoint,
    find_checkpoint,
    only_step_size,
    read_checkpoint,
    run_hash,
)
from solver.io.run_file import RUN_FILE
from solver.io.run_folder import resume_run_folder
from solver.io.run_resume import check_finished_run_file
from solver.run.plan import record_times

log = logging.getLogger(__name__)


def load_checkpoint(sim: Any, folder: Path, which: str | Path, backend: Backend, extend: bool = False
                ) -> Checkpoint:
    """Find, read and check the checkpoint to resume from (nothing is changed on disk).

    With `extend`, the checkpoint's time.end may be earlier than this config's (a run
    continued to a later end time, see check_extension).

    Raises:
        CheckpointError: none found, unreadable, or not from this config: the message
            names the keys that differ.
    """
    if extend and str(which) == "latest":  # the end state, not the last periodic checkpoint
        which = final_checkpoint(folder / CHECKPOINT_DIR) or which
    path = find_checkpoint(folder / CHECKPOINT_DIR, which)
    checkpoint = read_checkpoint(path)
    differences = config_differences(checkpoint.physics, sim._physics())
    if extend:
        check_extension(sim, checkpoint, path)
        differences = [d for d in differences if not d.startswith("time.end (")]
    if differences and only_step_size(differences):  # e.g. after a blow-up, with a lower dt
        log.warning("resuming with another step size (%s): the continuation is not bit-identical to an "
                    "uninterrupted run", "; ".join(differences))
    elif differences:
        shown = "; ".join(differences[:4]) + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written with a config whose physics differs: {shown}; "
            "resume with the config it was written with"
        )
    if checkpoint.species != sim.model.names or checkpoint.fields.shape != (len(sim.model.names), *sim.grid.shape) \
            or checkpoint.fields.dtype != sim.dtype:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds fields {checkpoint.species} of shape {checkpoint.fields.shape} "
            f"({checkpoint.fields.dtype}); this config has {sim.model.names} on {sim.grid.shape} ({sim.dtype})"
        )
    if checkpoint.maps_sha256 != array_sha256(sim.maps):
        raise CheckpointError(
            f"checkpoint {str(path)!r}: the static maps ({', '.join(sim.model.map_names)}) differ from those "
            "the run started with (was a map file changed?)"
        )
    events = sim.plan.events
    if not 0 <= checkpoint.next_event <= len(events) or (
        checkpoint.next_event < len(events) and checkpoint.t > events[checkpoint.next_event]
    ):
        raise CheckpointError(f"checkpoint {str(path)!r} is inconsistent: t = {checkpoint.t} at record "
                              f"{checkpoint.next_event} of {len(events)}")
    try:
        SystemicRuntime(sim.model).set_state(checkpoint.systemic)
        DiagnosticsEvaluator(sim.model, sim.grid, backend, sim.dtype).set_state(checkpoint.diagnostics)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: {exc}") from None
    if checkpoint.tumorsim_version != __version__:
        log.warning("checkpoint written by tumorsim %s, resuming with %s: the continuation may not be "
                    "bit-identical", checkpoint.tumorsim_version, __version__)
    if checkpoint.backend != backend.name:
        log.warning("checkpoint written on %s, resuming on %s: the continuation is the same physics but "
                    "not bit-identical to an uninterrupted run", checkpoint.backend, backend.name)
    return checkpoint

def check_extension(sim: Any, checkpoint: Checkpoint, path: Path) -> None:
    """Refuse to extend the run of `checkpoint` to this config's later time.end unless
    the result is bit-identical to a run with that end time from the start: the records
    (and so the steps) up to the old end must be exactly those of this plan.

    Raises:
        CheckpointError: the old end is not earlier, or the record times differ (an
            interval that defaults to a fraction of time.end, or one the old end is not
            a multiple of), or the time step depends on the end time.
    """
    end = sim.config.time.end
    old_time, old_output = checkpoint.physics.get("time", {}), checkpoint.physics.get("output", {})
    old_end = float(old_time.get("end", end))
    where = f"checkpoint {str(path)!r}"
    if old_end == end:
        return  # already a run to this end (an extension resumed): a plain resume
    if old_end > end:
        raise CheckpointError(f"--extend-to {end:g} is not after the end time of the run in {where} "
                              f"(time.end {old_end:g}); give a later time")
    snaps, series, _ = record_times(old_end, old_output.get("snapshot_every"), old_output.get("series_every"))
    for what, old, new in (("snapshot", snaps, sim.plan.snapshot_times),
                           ("time-series record", series, sim.plan.series_times)):
        if list(new[: len(old)]) != old:
            raise CheckpointError(
                f"cannot extend the run to {end:g}: its {what} times up to {old_end:g} differ from those of a "
                f"run to {end:g} (a record interval that is a fraction of time.end by default, or one that "
                f"{old_end:g} is not a multiple of), so the steps would differ; set output.snapshot_every and "
                "output.series_every to intervals that divide both end times, or run again to the new end")
    if checkpoint.physics.get("dt") != sim.plan.dt:
        raise CheckpointError(f"cannot extend the run to {end:g}: its time step ({checkpoint.physics.get('dt')}) "
                              f"differs from that of a run to {end:g} ({sim.plan.dt}); run again to the new end")

def finished_at(sim: Any, which: str | Path = "latest", extend: bool = False) -> float | None:
    """The end time, when the output folder holds this run finished: the checkpoint
    `which` is valid for this config (else the CheckpointError a resume would raise) and
    run.h5 is this run's (its run_hash) with every record of the plan; else None. Reads
    only: a run in progress (its folder locked), or a missing or short run.h5, is None.

    Raises:
        RunFileError: the run is finished but run.h5 fails a resume's checks (damaged).
    """
    from solver.io.lock import lock_holder
    from solver.io.run_file import open_run_file

    folder = resume_run_folder(sim.out_dir)
    if lock_holder(folder) is not None:
        return None  # the resume itself says who holds it
    checkpoint = load_checkpoint(sim, folder, which, get_backend(sim.config.backend), extend)
    try:
        with open_run_file(folder / RUN_FILE) as fh:
            stored = fh.attrs.get("run_hash", b"")
            stored = stored.decode() if isinstance(stored, bytes) else str(stored)
            series, snaps = fh["timeseries/time"][()], fh["fields/time"][()]
    except (TumorsimError, OSError, KeyError):
        return None  # the resume reports what is wrong with it
    plan = sim.plan
    complete = (stored == run_hash(sim._physics(), array_sha256(sim.maps))
                and len(series) == len(plan.series_times) and len(snaps) == len(plan.snapshot_times)
                and len(series) > 0 and series[-1] == plan.series_times[-1])
    if not complete:
        return None
    # nothing to do only if nothing is wrong: the resume's checks, every dataset read
    check_finished_run_file(folder / RUN_FILE, tuple(sim.model.names), tuple(sim.record_names()),
                            checkpoint.n_series, checkpoint.n_snapshots, checkpoint.t, checkpoint.run_hash)
    return float(series[-1])
